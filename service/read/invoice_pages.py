"""Invoices a page at a time, by (updated_at, organization, number), filtered; behind an
aging bucket, as they stood at the end of its day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from sqlalchemy import and_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.identity import OrganizationScope
from service.domain.reports import start_of_day_after
from service.read.conditions import OPEN, aging_buckets, valid_before
from service.store.organization_scope import in_scope
from service.store.schema import invoice_versions, invoices


@dataclass(frozen=True, slots=True)
class AgingBucketFilter:
    """The invoices in one bucket of the aging report as of the end of ``as_of`` in ``zone``;
    listed as they stood then (status, amounts and due date of the state in force)."""

    bucket: str
    as_of: date
    zone: tzinfo = UTC

    @property
    def end_of_day(self) -> datetime:
        return start_of_day_after(self.as_of, self.zone) or datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    organizations: OrganizationScope = None
    status: str | None = None
    currency: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    updated_since: datetime | None = None
    aging: AgingBucketFilter | None = None
    # As the aging report per customer names them; "" names the invoices stating none.
    customer_name: str | None = None
    customer_email: str | None = None


class ExportTooLarge(Exception):
    """An export went past its bound on pages: it ends with an error, never looks complete."""


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page ended: invoices are listed by (updated_at, organization, number)."""

    updated_at: datetime
    organization_id: str
    invoice_number: str


def invoices_page(
    filters: InvoiceFilters, limit: int, after: PageKey | None, *, newest_first: bool = False
) -> Any:
    """A page of invoices by (updated_at, organization, number), after ``after`` (before it,
    newest first)."""
    columns = invoices.c
    # Behind an aging bucket, invoices are listed as they stood then, and filtered so.
    state = columns if filters.aging is None else invoice_versions.c
    conditions = []
    conditions.extend(in_scope(columns.organization_id, filters.organizations))
    if filters.status:
        conditions.append(state.status == filters.status)
    if filters.currency:
        conditions.append(state.currency == filters.currency)
    if filters.due_before:
        conditions.append(state.due_date < filters.due_before)
    if filters.due_after:
        conditions.append(state.due_date > filters.due_after)
    if filters.updated_since:
        conditions.append(columns.updated_at >= filters.updated_since)
    for column, value in ((columns.customer_name, filters.customer_name),
                          (columns.customer_email, filters.customer_email)):  # fmt: skip
        if value is not None:
            conditions.append(column.is_(None) if value == "" else column == value)
    order = (columns.updated_at, columns.organization_id, columns.invoice_number)
    if after:
        last = tuple_(after.updated_at, after.organization_id, after.invoice_number)
        conditions.append(tuple_(*order) < last if newest_first else tuple_(*order) > last)
    query: Any = select(invoices)
    if filters.aging is not None:
        query = _in_aging_bucket(filters.aging)
    ordering = [column.desc() for column in order] if newest_first else order
    return query.where(*conditions).order_by(*ordering).limit(limit)


async def with_custom_plans(connection: AsyncConnection) -> None:
    """Plan the list's statements for their parameters, for the rest of the transaction.

    A prepared statement run often gets PostgreSQL's generic plan, chosen once without the
    filter's values; for the list it would pick one index for every filter value (the order's
    index for a currency with few invoices, say) and read far more rows than a page."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _in_aging_bucket(aging: AgingBucketFilter) -> Any:
    """The invoices whose state at the end of the day was open and in the bucket (the aging
    report's own rules, so their balances add up to the bucket), with that state's status,
    currency, amounts (and whether they were provisional) and due date; at most one state is
    in force at an instant, so each invoice is one row."""
    versions = invoice_versions.c
    rule = aging_buckets(aging.as_of, versions.due_date)[aging.bucket]
    as_of_state = [versions.status, versions.currency, versions.total_amount,
                   versions.balance_amount, versions.total_provisional,
                   versions.balance_provisional, versions.due_date]  # fmt: skip
    replaced = {column.name for column in as_of_state}
    current = [column for column in invoices.c if column.name not in replaced]
    return select(*current, *as_of_state, versions.valid_from).select_from(
        invoices.join(
            invoice_versions,
            and_(
                versions.organization_id == invoices.c.organization_id,
                versions.invoice_number == invoices.c.invoice_number,
                versions.status.in_(OPEN),
                valid_before(aging.end_of_day),
                rule,
            ),
        )
    )
