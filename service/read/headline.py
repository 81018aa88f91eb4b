"""The finance team's headline figures, per currency: what is owed now, how much of it is
overdue, how many invoices are open, what was collected this month and last, and days sales
outstanding (DSO).

Every figure comes from the reports /v1 answers (outstanding, aging, collections), so the
console's first page and the API never disagree; only what was billed, which DSO needs, is
read here. Unknown is never zero: a figure over rows of unknown amount says it is incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import OrganizationScope
from service.domain.reports import AGING_BUCKETS, period_of
from service.read.conditions import in_organization
from service.read.queries import InvoiceQueries
from service.store.errors import unavailability_as_store_error
from service.store.exact_sums import Summed, grouped_sums
from service.store.schema import invoice_versions

# DSO over this many days: outstanding / (billed in these days / these days).
DSO_DAYS = 90
NOT_OVERDUE = ("current", "noDueDate")


@dataclass(frozen=True, slots=True)
class Headline:
    currency: str | None
    outstanding: Decimal | None
    open_invoices: int
    overdue: Decimal | None
    collected_this_month: Decimal | None
    collected_last_month: Decimal | None
    billed_in_dso_days: Decimal | None
    dso_days: Decimal | None  # None when nothing was billed in the window
    incomplete: bool  # some figure leaves out amounts the ledger does not know


class FinanceHeadlines:
    def __init__(self, queries: InvoiceQueries, engine: AsyncEngine) -> None:
        self._queries = queries
        self._engine = engine

    async def per_currency(
        self, today: date, organizations: OrganizationScope = None
    ) -> list[Headline]:
        """Per currency, as of the end of ``today`` (UTC)."""
        return await _headlines(self._queries, self._engine, today, organizations)


async def _headlines(
    queries: InvoiceQueries, engine: AsyncEngine, today: date, organizations: OrganizationScope
) -> list[Headline]:
    outstanding = {
        item["currency"]: item for item in await queries.outstanding(None, organizations)
    }
    aging = {item["currency"]: item for item in await queries.aging(today, organizations)}
    first_of_month = today.replace(day=1)
    first_of_last_month = (first_of_month - timedelta(days=1)).replace(day=1)
    collected = await queries.collections(first_of_last_month, today, "month", organizations)
    billed = await _billed_since(engine, today - timedelta(days=DSO_DAYS - 1), organizations)
    currencies = sorted(
        {*outstanding, *aging, *(item["currency"] for item in collected), *billed},
        key=lambda currency: currency or "",
    )
    return [
        _headline(
            currency, outstanding.get(currency), aging.get(currency), collected, billed, today
        )
        for currency in currencies
    ]


def _headline(
    currency: str | None,
    outstanding: dict[str, Any] | None,
    aging: dict[str, Any] | None,
    collected: list[dict[str, Any]],
    billed: dict[str | None, tuple[Decimal | None, bool]],
    today: date,
) -> Headline:
    def collected_in(day: date) -> dict[str, Any] | None:
        period = period_of(day, "month")
        found = [i for i in collected if i["currency"] == currency and i["period"] == period]
        return found[0] if found else None

    this_month, last_month = collected_in(today), collected_in(today.replace(day=1) - timedelta(1))
    balance = None  # unknown: open invoices, none with a known balance
    if outstanding is not None and outstanding["balance"] is not None:
        balance = Decimal(outstanding["balance"])
    overdue = None
    if aging is not None:
        overdue = sum(
            (
                Decimal(aging[b])
                for b in AGING_BUCKETS
                if b not in NOT_OVERDUE and aging[b] is not None
            ),
            Decimal(0),
        )
    billed_amount, billed_incomplete = billed.get(currency, (Decimal(0), False))
    dso = None
    if balance is not None and billed_amount:
        dso = (balance * DSO_DAYS / billed_amount).quantize(Decimal("0.1"))
    return Headline(
        currency=currency,
        outstanding=balance if outstanding else Decimal(0),
        open_invoices=outstanding["invoices"] if outstanding else 0,
        overdue=overdue if aging else Decimal(0),
        collected_this_month=_amount(this_month),
        collected_last_month=_amount(last_month),
        billed_in_dso_days=billed_amount,
        dso_days=dso,
        incomplete=any(
            bool(row and row["incomplete"]) for row in (outstanding, aging, this_month, last_month)
        )
        or billed_incomplete,
    )


def _amount(item: dict[str, Any] | None) -> Decimal | None:
    if item is None:
        return Decimal(0)
    return None if item["amount"] is None else Decimal(item["amount"])


async def _billed_since(
    engine: AsyncEngine, first_day: date, organizations: OrganizationScope
) -> dict[str | None, tuple[Decimal | None, bool]]:
    """Per currency: the totals of the invoices first seen on or after ``first_day``, as their
    first state stated them (an invoice's first state: no earlier one of the same invoice)."""
    versions = invoice_versions.c
    earlier = invoice_versions.alias("earlier")
    first_state = ~exists().where(
        and_(
            earlier.c.organization_id == versions.organization_id,
            earlier.c.invoice_number == versions.invoice_number,
            earlier.c.valid_from < versions.valid_from,
        )
    )
    since = datetime.combine(first_day, time(), UTC)
    async with unavailability_as_store_error(), engine.connect() as connection:
        groups = await grouped_sums(
            connection,
            invoice_versions,
            [versions.currency],
            {"total": Summed(versions.total_amount, provisional=versions.total_provisional)},
            [
                versions.valid_from >= since,
                first_state,
                *in_organization(invoice_versions, organizations),
            ],
        )
    return {
        group.key[0]: (group.sums["total"].amount, group.sums["total"].incomplete)
        for group in groups
    }
