"""The invoice list a person pages through, both ways: sorted by last change, due date or
balance, ascending or descending, with keyset cursors (never offsets).

The order is (sorted column, updated_at, organization, number), all in one direction, so that
PostgreSQL reads it from an index (``ix_invoices_list_by_due_date``,
``ix_invoices_list_by_balance_amount``, or the list's own) and stops at the page. A due date
or a balance may be unknown (NULL): unknown sorts after every known value ascending, before
them descending, on both engines (PostgreSQL's own order of an index). Each of the two parts,
known and unknown, is read by a query of its own, so each stays one range of an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Row, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.read.invoice_pages import InvoiceFilters, invoices_page, with_custom_plans
from service.store.errors import unavailability_as_store_error
from service.store.schema import invoice_versions, invoices

SortName = Literal["updated", "due", "balance"]
SORTS: tuple[SortName, ...] = ("updated", "due", "balance")
# The column each sort is by, beyond the list's own order (updated_at, organization, number).
SORTED_COLUMNS = {"updated": None, "due": "due_date", "balance": "balance_amount"}


@dataclass(frozen=True, slots=True)
class InvoiceSort:
    by: SortName = "updated"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class SortKey:
    """Where a page begins or ends: the sorted value (None when unknown, or when sorting by
    last change) and the list's own order."""

    value: date | Decimal | None
    updated_at: datetime
    organization_id: str
    invoice_number: str


@dataclass(frozen=True, slots=True)
class SortedPage:
    rows: list[Row[Any]]
    earlier: bool  # whether invoices come before this page in the order
    later: bool  # whether invoices come after it


def key_of(row: Row[Any], sort: InvoiceSort) -> SortKey:
    column = SORTED_COLUMNS[sort.by]
    value = None if column is None else getattr(row, column)
    return SortKey(value, row.updated_at, row.organization_id, row.invoice_number)


class SortedInvoices:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def page(
        self,
        filters: InvoiceFilters,
        sort: InvoiceSort,
        size: int,
        key: SortKey | None = None,
        *,
        before: bool = False,
    ) -> SortedPage:
        """The ``size`` invoices after ``key`` in the order (before it, with ``before``), in
        the order; the first page without a key."""
        # Read against the order when paging back, then turn the page around.
        scan_descending = sort.descending != before
        rows: list[Row[Any]] = []
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            await with_custom_plans(connection)
            for query in _part_queries(filters, sort, key, scan_descending):
                wanted = size + 1 - len(rows)
                rows += (await connection.execute(query.limit(wanted))).all()
                if len(rows) > size:
                    break
        more = len(rows) > size
        rows = rows[:size]
        if before:
            rows.reverse()
            return SortedPage(rows, earlier=more, later=key is not None)
        return SortedPage(rows, earlier=key is not None, later=more)


def _part_queries(
    filters: InvoiceFilters, sort: InvoiceSort, key: SortKey | None, scan_descending: bool
) -> list[Any]:
    """The queries that read the order from ``key`` on, in the scan's direction: one per
    part (known values, unknown values) the key is in or that follows it."""
    base = invoices_page(filters, 1, None).order_by(None).limit(None)
    listed = (invoices.c.updated_at, invoices.c.organization_id, invoices.c.invoice_number)
    column_name = SORTED_COLUMNS[sort.by]
    if column_name is None:
        return [_ordered(base, listed, key and _after(listed, key, None), scan_descending)]
    # Behind an aging bucket the list shows invoices as they stood: sorted by that state.
    state = invoices.c if filters.aging is None else invoice_versions.c
    column = state[column_name]
    order = (column, *listed)
    # Unknown is the largest value: last when ascending, first when descending.
    parts = [False, True] if not scan_descending else [True, False]
    queries = []
    for unknown in parts:
        if key is not None and (key.value is None) != unknown:
            if _part_precedes_key(unknown, key, scan_descending):
                continue
            condition = None  # a part after the key's: read it from its start
        elif key is not None:
            condition = _after(order if not unknown else listed, key, column)
        else:
            condition = None
        part = base.where(column.is_(None) if unknown else column.is_not(None))
        queries.append(_ordered(part, order, condition, scan_descending))
    return queries


def _part_precedes_key(unknown: bool, key: SortKey, scan_descending: bool) -> bool:
    """Whether a part (of unknown values, or of known ones) comes before the key's part in
    the scan's direction."""
    key_unknown = key.value is None
    # Ascending: known, then unknown; descending: unknown, then known.
    first_is_unknown = scan_descending
    return unknown == first_is_unknown and key_unknown != first_is_unknown


def _after(columns: Sequence[Any], key: SortKey, sorted_column: Any) -> Any:
    """The row-value comparison that keeps what follows ``key`` (direction set later)."""
    values: list[Any] = [key.updated_at, key.organization_id, key.invoice_number]
    if sorted_column is not None and len(columns) == 4:
        values = [key.value, *values]
    bound = [
        bindparam(None, value, type_=column.type)
        for column, value in zip(columns, values, strict=True)
    ]
    return tuple_(*columns), tuple_(*bound)


def _ordered(query: Any, order: Sequence[Any], after: Any, descending: bool) -> Any:
    if after is not None:
        left, right = after
        query = query.where(left < right if descending else left > right)
    return query.order_by(*[column.desc() if descending else column for column in order])
