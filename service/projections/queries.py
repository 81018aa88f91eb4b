"""Read-only queries over the invoice read models, for the API and its reports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Row, and_, case, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import UNKNOWN_ORGANIZATION, InvoiceKey
from service.domain.invoice import OPEN_STATUSES
from service.domain.money import from_micros
from service.store.errors import unavailability_as_store_error
from service.store.schema import invoice_collections, invoice_totals, invoice_versions, invoices

OPEN = sorted(status.value for status in OPEN_STATUSES)
Interval = Literal["day", "week", "month"]


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    status: str | None = None
    currency: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    updated_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page ended: invoices are listed by (updated_at, invoice_number)."""

    updated_at: datetime
    invoice_number: str


def _sum(micros: Any) -> Decimal:
    return from_micros(int(micros or 0))


class InvoiceQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _all(self, query: Any) -> Sequence[Row[Any]]:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return (await connection.execute(query)).all()

    async def invoice(self, invoice_number: str) -> Row[Any] | None:
        rows = await self._all(select(invoices).where(invoices.c.invoice_number == invoice_number))
        return rows[0] if rows else None

    async def invoices(
        self, filters: InvoiceFilters, limit: int, after: PageKey | None
    ) -> Sequence[Row[Any]]:
        conditions = []
        if filters.status:
            conditions.append(invoices.c.status == filters.status)
        if filters.currency:
            conditions.append(invoices.c.currency == filters.currency)
        if filters.due_before:
            conditions.append(invoices.c.due_date < filters.due_before)
        if filters.due_after:
            conditions.append(invoices.c.due_date > filters.due_after)
        if filters.updated_since:
            conditions.append(invoices.c.updated_at >= filters.updated_since)
        if after:
            conditions.append(
                tuple_(invoices.c.updated_at, invoices.c.invoice_number)
                > tuple_(after.updated_at, after.invoice_number)
            )
        return await self._all(
            select(invoices)
            .where(*conditions)
            .order_by(invoices.c.updated_at, invoices.c.invoice_number)
            .limit(limit)
        )

    async def outstanding(self, as_of: datetime | None) -> list[dict[str, Any]]:
        if as_of is None:
            source = invoice_totals
            query = select(
                source.c.currency,
                func.sum(source.c.invoices).label("invoices"),
                func.sum(source.c.balance_micros).label("balance"),
            ).where(source.c.invoices > 0)
        else:
            source = invoice_versions
            query = select(
                source.c.currency,
                func.count().label("invoices"),
                func.sum(source.c.balance_micros).label("balance"),
            ).where(_valid_at(as_of))
        query = query.where(source.c.status.in_(OPEN))
        rows = await self._all(query.group_by(source.c.currency).order_by(source.c.currency))
        return [
            {
                "currency": row.currency or None,
                "invoices": int(row.invoices),
                "balance": _sum(row.balance),
            }
            for row in rows
        ]

    async def aging(self, as_of: date) -> list[dict[str, Any]]:
        """Open balances by days past due at the end of ``as_of`` (UTC)."""
        end_of_day = datetime.combine(as_of + timedelta(days=1), time(), UTC)
        due = invoice_versions.c.due_date
        balance = invoice_versions.c.balance_micros
        buckets = {
            "current": due >= as_of,
            "days1To30": and_(due < as_of, due >= as_of - timedelta(days=30)),
            "days31To60": and_(due < as_of - timedelta(days=30), due >= as_of - timedelta(days=60)),
            "days61To90": and_(due < as_of - timedelta(days=60), due >= as_of - timedelta(days=90)),
            "over90": due < as_of - timedelta(days=90),
            "noDueDate": due.is_(None),
        }
        columns = [
            func.sum(case((rule, balance), else_=0)).label(name) for name, rule in buckets.items()
        ]
        rows = await self._all(
            select(invoice_versions.c.currency, *columns)
            .where(invoice_versions.c.status.in_(OPEN), _valid_before(end_of_day))
            .group_by(invoice_versions.c.currency)
            .order_by(invoice_versions.c.currency)
        )
        return [
            {"currency": row.currency, **{name: _sum(getattr(row, name)) for name in buckets}}
            for row in rows
        ]

    async def collections(self, start: date, end: date, interval: Interval) -> list[dict[str, Any]]:
        day = func.date(invoice_collections.c.collected_at)
        rows = await self._all(
            select(invoice_collections.c.currency, day.label("day"),
                   func.sum(invoice_collections.c.amount_micros).label("amount"))
            .where(
                invoice_collections.c.collected_at >= datetime.combine(start, time(), UTC),
                invoice_collections.c.collected_at
                < datetime.combine(end + timedelta(days=1), time(), UTC),
            )
            .group_by(invoice_collections.c.currency, day)
        )  # fmt: skip
        totals: dict[tuple[str, str | None], int] = defaultdict(int)
        for row in rows:
            collected_on = row.day if isinstance(row.day, date) else date.fromisoformat(row.day)
            totals[(period_of(collected_on, interval), row.currency)] += int(row.amount)
        return [
            {"period": period, "currency": currency, "amount": from_micros(micros)}
            for (period, currency), micros in sorted(
                totals.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ]

    async def doubtful_invoices(
        self, now: datetime, quiet_since: datetime, limit: int
    ) -> list[InvoiceKey]:
        """Invoices the ledger has reason to doubt: never seen in full (no total), PENDING,
        open and past due or quiet for long, or a balance above the total."""
        columns = invoices.c
        is_open = columns.status.in_(OPEN)
        rows = await self._all(
            select(columns.invoice_number)
            .where(
                or_(
                    columns.total_micros.is_(None),
                    columns.status == "PENDING",
                    and_(is_open, columns.due_date < now.date()),
                    and_(is_open, columns.last_event_at < quiet_since),
                    columns.balance_micros > columns.total_micros,
                )
            )
            .order_by(columns.updated_at)
            .limit(limit)
        )
        # Until the read model records organizations, every doubt's organization is unknown.
        return [InvoiceKey(UNKNOWN_ORGANIZATION, row.invoice_number) for row in rows]

    async def by_status(self) -> list[dict[str, Any]]:
        rows = await self._all(
            select(invoice_totals)
            .where(invoice_totals.c.invoices > 0)
            .order_by(invoice_totals.c.status, invoice_totals.c.currency)
        )
        return [
            {
                "status": row.status or None,
                "currency": row.currency or None,
                "invoices": row.invoices,
                "total": _sum(row.total_micros),
                "balance": _sum(row.balance_micros),
            }
            for row in rows
        ]


def _valid_at(moment: datetime) -> Any:
    return and_(
        invoice_versions.c.valid_from <= moment,
        or_(invoice_versions.c.valid_to.is_(None), invoice_versions.c.valid_to > moment),
    )


def _valid_before(moment: datetime) -> Any:
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
