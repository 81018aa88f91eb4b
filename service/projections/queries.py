"""Read-only queries over the invoice read models, for the API and its reports.

Every report sums only known amounts, in one currency per row, and says per row whether any
invoice in it lacked an amount the row sums (``incomplete``); a sum over no known amount is
None. Sums are exact Decimals on both engines (see ``service.store.exact_sums``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import InvoiceKey
from service.domain.invoice import OPEN_STATUSES
from service.store.database import is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.exact_sums import GroupSums, PartialSum, Summed, grouped_sums
from service.store.schema import invoice_collections, invoice_totals, invoice_versions, invoices

OPEN = sorted(status.value for status in OPEN_STATUSES)
Interval = Literal["day", "week", "month"]
AGING_BUCKETS = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    organization_id: str | None = None
    status: str | None = None
    currency: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    updated_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page ended: invoices are listed by (updated_at, organization, number)."""

    updated_at: datetime
    organization_id: str
    invoice_number: str


def _report_order(item: dict[str, Any]) -> tuple[str, ...]:
    return (item.get("period", ""), item.get("status") or "", item["currency"] or "")


class InvoiceQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _all(self, query: Any) -> Sequence[Row[Any]]:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return (await connection.execute(query)).all()

    async def _grouped_sums(
        self,
        source: Any,
        keys: Sequence[ColumnElement[Any]],
        sums: dict[str, Summed],
        where: Sequence[ColumnElement[bool]],
    ) -> list[GroupSums]:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return await grouped_sums(connection, source, keys, sums, where)

    async def invoices_numbered(
        self, invoice_number: str, organization_id: str | None = None
    ) -> Sequence[Row[Any]]:
        """The invoices with this number: in the organization named, else in every one."""
        query = select(invoices).where(invoices.c.invoice_number == invoice_number)
        if organization_id is not None:
            query = query.where(invoices.c.organization_id == organization_id)
        return await self._all(query.order_by(invoices.c.organization_id))

    async def invoices(
        self, filters: InvoiceFilters, limit: int, after: PageKey | None
    ) -> Sequence[Row[Any]]:
        columns = invoices.c
        conditions = []
        if filters.organization_id is not None:
            conditions.append(columns.organization_id == filters.organization_id)
        if filters.status:
            conditions.append(columns.status == filters.status)
        if filters.currency:
            conditions.append(columns.currency == filters.currency)
        if filters.due_before:
            conditions.append(columns.due_date < filters.due_before)
        if filters.due_after:
            conditions.append(columns.due_date > filters.due_after)
        if filters.updated_since:
            conditions.append(columns.updated_at >= filters.updated_since)
        order = (columns.updated_at, columns.organization_id, columns.invoice_number)
        if after:
            last = (after.updated_at, after.organization_id, after.invoice_number)
            conditions.append(tuple_(*order) > tuple_(*last))
        return await self._all(select(invoices).where(*conditions).order_by(*order).limit(limit))

    async def outstanding(
        self, as_of: datetime | None, organization_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per currency: open invoices and their balance, now or at a past provider time."""
        if as_of is None:
            by_currency: dict[str | None, PartialSum] = {}
            for row in await self._totals(organization_id, invoice_totals.c.status.in_(OPEN)):
                currency = row.currency or None
                balance = PartialSum(row.invoices, row.invoices_without_balance, row.balance_amount)
                by_currency[currency] = by_currency.get(currency, PartialSum()) + balance
            sums = [(currency, balance.rows, balance) for currency, balance in by_currency.items()]
        else:
            groups = await self._grouped_sums(
                invoice_versions,
                [invoice_versions.c.currency],
                {"balance": Summed(invoice_versions.c.balance_amount)},
                [
                    invoice_versions.c.status.in_(OPEN),
                    _valid_at(as_of),
                    *_in_organization(invoice_versions, organization_id),
                ],
            )
            sums = [(group.key[0], group.rows, group.sums["balance"]) for group in groups]
        items = [
            {
                "currency": currency,
                "invoices": count,
                "balance": balance.amount,
                "incomplete": balance.incomplete,
            }
            for currency, count, balance in sums
        ]
        return sorted(items, key=_report_order)

    async def aging(self, as_of: date, organization_id: str | None = None) -> list[dict[str, Any]]:
        """Open balances by days past due at the end of ``as_of`` (UTC)."""
        end_of_day = _start_of_day_after(as_of) or datetime.max.replace(tzinfo=UTC)
        due = invoice_versions.c.due_date
        days_30, days_60, days_90 = (_days_before(as_of, days) for days in (30, 60, 90))
        buckets = {
            "current": due >= as_of,
            "days1To30": and_(due < as_of, due >= days_30),
            "days31To60": and_(due < days_30, due >= days_60),
            "days61To90": and_(due < days_60, due >= days_90),
            "over90": due < days_90,
            "noDueDate": due.is_(None),
        }
        groups = await self._grouped_sums(
            invoice_versions,
            [invoice_versions.c.currency],
            {
                name: Summed(invoice_versions.c.balance_amount, counted=rule)
                for name, rule in buckets.items()
            },
            [
                invoice_versions.c.status.in_(OPEN),
                _valid_before(end_of_day),
                *_in_organization(invoice_versions, organization_id),
            ],
        )
        items = [
            {
                "currency": group.key[0],
                **{name: group.sums[name].amount for name in AGING_BUCKETS},
                "incomplete": group.incomplete,
            }
            for group in groups
        ]
        return sorted(items, key=_report_order)

    async def collections(
        self, start: date, end: date, interval: Interval, organization_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Money collected per period and currency; a collection of unknown amount makes its
        period's row incomplete."""
        collected = invoice_collections.c
        day = self._utc_day(collected.collected_at)
        within = [collected.collected_at >= datetime.combine(start, time(), UTC)]
        if (after_end := _start_of_day_after(end)) is not None:
            within.append(collected.collected_at < after_end)
        groups = await self._grouped_sums(
            invoice_collections,
            [collected.currency, day],
            {"amount": Summed(collected.amount)},
            [*within, *_in_organization(invoice_collections, organization_id)],
        )
        by_period: dict[tuple[str, str | None], PartialSum] = {}
        for group in groups:
            currency, day_collected = group.key
            if not isinstance(day_collected, date):  # SQLite's date() answers with text
                day_collected = date.fromisoformat(day_collected)
            key = (period_of(day_collected, interval), currency)
            by_period[key] = by_period.get(key, PartialSum()) + group.sums["amount"]
        items = [
            {
                "period": period,
                "currency": currency,
                "amount": amount.amount,
                "incomplete": amount.incomplete,
            }
            for (period, currency), amount in by_period.items()
        ]
        return sorted(items, key=_report_order)

    def _utc_day(self, instant: ColumnElement[Any]) -> ColumnElement[Any]:
        """The UTC day of a stored instant (sessions and stored instants are UTC)."""
        if is_postgresql(self._engine):
            return func.date(instant)
        # SQLite's date() rounds to milliseconds: 23:59:59.9996 would fall on the next day
        # (and on 9999-12-31, on none). Its stored text starts with the day itself.
        return func.substr(instant, 1, 10)

    async def doubtful_invoices(
        self, now: datetime, quiet_since: datetime, limit: int
    ) -> list[InvoiceKey]:
        """Invoices the ledger has reason to doubt: never seen in full (no total), PENDING,
        open and past due or quiet for long, or a balance above the total."""
        columns = invoices.c
        is_open = columns.status.in_(OPEN)
        rows = await self._all(
            select(columns.organization_id, columns.invoice_number)
            .where(
                or_(
                    columns.total_amount.is_(None),
                    columns.status == "PENDING",
                    and_(is_open, columns.due_date < now.date()),
                    and_(is_open, columns.last_event_at < quiet_since),
                    columns.balance_amount > columns.total_amount,
                )
            )
            .order_by(columns.updated_at, columns.organization_id, columns.invoice_number)
            .limit(limit)
        )
        return [InvoiceKey(row.organization_id, row.invoice_number) for row in rows]

    async def by_status(self, organization_id: str | None = None) -> list[dict[str, Any]]:
        """Per status and currency: invoices, and the sums of their totals and balances."""
        by_key: dict[tuple[str | None, str | None], tuple[PartialSum, PartialSum]] = {}
        for row in await self._totals(organization_id):
            key = (row.status or None, row.currency or None)
            total = PartialSum(row.invoices, row.invoices_without_total, row.total_amount)
            balance = PartialSum(row.invoices, row.invoices_without_balance, row.balance_amount)
            known_total, known_balance = by_key.get(key, (PartialSum(), PartialSum()))
            by_key[key] = (known_total + total, known_balance + balance)
        items = [
            {
                "status": status,
                "currency": currency,
                "invoices": total.rows,
                "total": total.amount,
                "balance": balance.amount,
                "incomplete": total.incomplete or balance.incomplete,
            }
            for (status, currency), (total, balance) in by_key.items()
        ]
        return sorted(items, key=_report_order)

    async def _totals(
        self, organization_id: str | None, *conditions: ColumnElement[bool]
    ) -> Sequence[Row[Any]]:
        """invoice_totals rows: a handful per organization, added up in Python, exactly."""
        return await self._all(
            select(invoice_totals).where(
                invoice_totals.c.invoices > 0,
                *conditions,
                *_in_organization(invoice_totals, organization_id),
            )
        )


def _days_before(day: date, days: int) -> date:
    """``day`` less ``days``, or the first day there is (no invoice is due before it)."""
    return day - timedelta(days=days) if day - date.min >= timedelta(days=days) else date.min


def _start_of_day_after(day: date) -> datetime | None:
    """Midnight UTC after ``day``; None after the last day there is (no instant follows it)."""
    return None if day == date.max else datetime.combine(day + timedelta(days=1), time(), UTC)


def _in_organization(table: Any, organization_id: str | None) -> list[ColumnElement[bool]]:
    return [] if organization_id is None else [table.c.organization_id == organization_id]


def _valid_at(moment: datetime) -> ColumnElement[bool]:
    return and_(
        invoice_versions.c.valid_from <= moment,
        or_(invoice_versions.c.valid_to.is_(None), invoice_versions.c.valid_to > moment),
    )


def _valid_before(moment: datetime) -> ColumnElement[bool]:
    """The state in force just before ``moment`` (the end of a day, exclusive)."""
    return and_(
        invoice_versions.c.valid_from < moment,
        or_(invoice_versions.c.valid_to.is_(None), invoice_versions.c.valid_to >= moment),
    )


def period_of(day: date, interval: Interval) -> str:
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday it starts
    return day.strftime("%Y-%m")
