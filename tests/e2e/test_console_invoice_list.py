"""The console's invoice list, over a real socket on both engines: sorted by last change, due
date or balance either way (unknown last ascending, first descending), paged forwards and
back with keyset cursors, and its CSV file the same invoices in the same order."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from service.fronts.console.frame import INVOICES_PAGE_SIZE
from tests.support.console_pages import OPERATOR, console_client, deliver, projected

COUNT = INVOICES_PAGE_SIZE + 7


def due_date(index: int) -> str | None:
    return None if index % 5 == 0 else f"2023-06-{index % 9 + 1:02d}"


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    with console_client(database_url) as client:
        for index in range(COUNT):
            deliver(
                client, f"L-{index:03d}", balance=f"{(index * 37) % 23}.50", dueDate=due_date(index)
            )
        projected(client, COUNT)
        yield client


def listed(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(
            "/v1/invoices", params={"limit": 100, **({"cursor": cursor} if cursor else {})},
            headers=OPERATOR,
        ).json()  # fmt: skip
        items += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return items


def expected_order(items: list[dict[str, Any]], by: str, descending: bool) -> list[str]:
    field = {"updated": None, "due": "dueDate", "balance": "balanceAmount"}[by]

    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        rest = (item["updatedAt"], item["organizationId"], item["invoiceNumber"])
        if field is None:
            return rest
        value = item[field]
        known = value is not None
        parsed = (date.fromisoformat(value) if by == "due" else Decimal(value)) if known else 0
        return (not known, parsed, *rest)  # unknown is the largest

    return [item["invoiceNumber"] for item in sorted(items, key=key, reverse=descending)]


def numbers(page: str) -> list[str]:
    return re.findall(r'<td><a href="/console/invoices\?invoiceNumber=(L-[0-9]+)&amp;', page)


def link(page: str, rel: str) -> str | None:
    found = re.findall(rf'href="/console/invoices(\?[^"]+)" rel="{rel}"', page)
    return html.unescape(found[0]) if found else None


@pytest.mark.parametrize(
    ("by", "order"),
    [("due", "asc"), ("due", "desc"), ("balance", "desc"), ("balance", "asc"), ("updated", "asc")],
)
def test_the_list_pages_forwards_and_back_in_the_order_asked_for(
    console: httpx.Client, by: str, order: str
) -> None:
    items = listed(console)
    assert any(item["dueDate"] is None for item in items)  # unknown due dates are listed too
    expected = expected_order(items, by, order == "desc")
    assert len(expected) == COUNT
    first = console.get("/console/invoices", params={"sort": by, "order": order}, headers=OPERATOR)
    assert first.status_code == 200, first.text
    assert link(first.text, "prev") is None
    assert numbers(first.text) == expected[:INVOICES_PAGE_SIZE]
    following = link(first.text, "next")
    assert following is not None
    second = console.get("/console/invoices" + following, headers=OPERATOR)
    assert numbers(second.text) == expected[INVOICES_PAGE_SIZE:]
    assert link(second.text, "next") is None
    back = link(second.text, "prev")
    assert back is not None
    again = console.get("/console/invoices" + back, headers=OPERATOR)
    assert numbers(again.text) == expected[:INVOICES_PAGE_SIZE]
    assert link(again.text, "prev") is None and link(again.text, "next") is not None

    exported = console.get("/console/invoices.csv", params={"sort": by, "order": order},
                           headers=OPERATOR)  # fmt: skip
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["invoice"] for row in rows] == expected


def test_the_csv_of_a_filtered_list_holds_what_its_pages_show(console: httpx.Client) -> None:
    query = {"currency": "usd", "sort": "balance", "order": "desc", "customerName": "Tanya Lee"}
    page = console.get("/console/invoices", params=query, headers=OPERATOR)
    [export] = re.findall(
        r'href="(/console/invoices.csv\?[^"]+)" data-field="export-csv"', page.text
    )
    rows = list(
        csv.DictReader(io.StringIO(console.get(html.unescape(export), headers=OPERATOR).text))
    )
    shown = re.findall(
        r'<td><a href="/console/invoices\?invoiceNumber=(L-[0-9]+)&amp;.*?</td>.*?'
        r'<td class="amount">.*?</td>\s*<td class="amount"><span class="money" title="([0-9.]+)"',
        page.text, re.DOTALL,
    )  # fmt: skip
    assert len(shown) == INVOICES_PAGE_SIZE
    assert [(row["invoice"], Decimal(row["balance"])) for row in rows[:INVOICES_PAGE_SIZE]] == [
        (number, Decimal(balance)) for number, balance in shown
    ]
    assert len(rows) == COUNT and {row["customer"] for row in rows} == {"Tanya Lee"}


@pytest.mark.parametrize(
    ("query", "named"),
    [({"sort": "amount"}, "sort"), ({"sort": "due", "order": "up"}, "order"),
     ({"cursor": "not-a-cursor"}, "cursor")],
)  # fmt: skip
def test_a_sort_or_a_cursor_that_cannot_be_read_is_a_400_naming_it(
    console: httpx.Client, query: dict[str, str], named: str
) -> None:
    answer = console.get("/console/invoices", params=query, headers=OPERATOR)
    assert answer.status_code == 400, answer.text
    assert f"{named}:" in html.unescape(answer.text)


def test_a_cursor_made_for_another_sort_is_refused(console: httpx.Client) -> None:
    first = console.get("/console/invoices", params={"sort": "due"}, headers=OPERATOR)
    following = link(first.text, "next")
    assert following is not None
    cursor = re.findall(r"cursor=([^&]+)", following)[0]
    answer = console.get(
        "/console/invoices", params={"sort": "balance", "cursor": cursor}, headers=OPERATOR
    )
    assert answer.status_code == 400
    assert "cursor:" in html.unescape(answer.text)
