"""The console's invoice list: its sort (by last change, due date or balance, either way) and
its links to the pages before and after, each a keyset cursor for that sort."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from service.fronts.console.inputs import InvalidInput, text_filter
from service.read.cursors import UnreadableCursor, decode_sorted_cursor, encode_sorted_cursor
from service.read.sorted_invoices import SORTS, InvoiceSort, SortedPage, SortKey, key_of

SORT_LABELS = {"updated": "last change", "due": "due date", "balance": "balance"}
# What a person asks for first: the latest changes, the earliest due dates, the largest debts.
DESCENDING_BY_DEFAULT = {"updated": True, "due": False, "balance": True}


def list_sort(query: Mapping[str, str]) -> InvoiceSort:
    by = query.get("sort") or "updated"
    if by not in SORTS:
        raise InvalidInput("sort: must be one of " + ", ".join(SORTS))
    order = query.get("order") or ("desc" if DESCENDING_BY_DEFAULT[by] else "asc")
    if order not in ("asc", "desc"):
        raise InvalidInput("order: must be asc or desc")
    return InvoiceSort(by, order == "desc")


def list_cursor(query: Mapping[str, str], sort: InvoiceSort) -> tuple[SortKey | None, bool]:
    """The key a page begins after (or ends before) and whether it is before it."""
    cursor = text_filter(query.get("cursor"), "cursor")
    if cursor is None:
        return None, False
    try:
        return decode_sorted_cursor(cursor, sort)
    except UnreadableCursor:
        raise InvalidInput("cursor: is not a link this console made for this sort") from None


def page_links(
    query: Mapping[str, str], sort: InvoiceSort, page: SortedPage
) -> dict[str, str | None]:
    """The query strings of the pages before and after ``page``, keeping its filters."""
    kept: dict[str, Any] = {
        name: value for name, value in query.items() if name != "cursor" and value
    }
    links: dict[str, str | None] = {"previous": None, "next": None}
    if page.rows and page.earlier:
        cursor = encode_sorted_cursor(sort, key_of(page.rows[0], sort), before=True)
        links["previous"] = "?" + urlencode({**kept, "cursor": cursor})
    if page.rows and page.later:
        cursor = encode_sorted_cursor(sort, key_of(page.rows[-1], sort), before=False)
        links["next"] = "?" + urlencode({**kept, "cursor": cursor})
    return links


def sort_choices(query: Mapping[str, str], sort: InvoiceSort) -> list[dict[str, Any]]:
    """A link per sort and direction, from the first page, keeping the filters."""
    kept = {
        name: value
        for name, value in query.items()
        if name not in ("cursor", "sort", "order") and value
    }
    return [
        {
            "sort": by,
            "order": order,
            "label": f"{SORT_LABELS[by]} {'↓' if order == 'desc' else '↑'}",
            "current": (by, order == "desc") == (sort.by, sort.descending),
            "query": "?" + urlencode({**kept, "sort": by, "order": order}),
        }
        for by in SORTS
        for order in ("asc", "desc")
    ]
