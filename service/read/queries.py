"""Read-only queries over the invoice read models, for the API and its reports.

Every report sums only known amounts, in one currency per row, and says per row whether any
invoice in it lacked an amount the row sums (``incomplete``); a sum over no known amount is
None. Sums are exact Decimals on both engines (see ``service.store.exact_sums``). Beside each
sum, a row gives its provisional part (``provisional_…``): the amounts in it inferred from
notifications alone, which the sum includes; zero when none is, None only where the sum is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import InvoiceKey, OrganizationScope
from service.domain.reports import (
    AGING_BUCKETS,
    Interval,
    aging_bounds,
    is_utc,
    period_of,
    start_of_day,
    start_of_day_after,
)
from service.read import zoned_collections
from service.read.conditions import OPEN, aging_buckets, in_organization, valid_at, valid_before
from service.read.invoice_pages import (
    ExportTooLarge,
    InvoiceFilters,
    PageKey,
    invoices_page,
    with_custom_plans,
)
from service.read.local_days import day_of_text, local_day
from service.read.report_rows import (
    across_buckets,
    aging_items,
    collection_items,
    customer_order,
    outstanding_items,
    report_order,
)
from service.store.database import is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.exact_sums import GroupSums, PartialSum, Summed, grouped_sums
from service.store.schema import (
    invoice_collections,
    invoice_totals,
    invoice_versions,
    invoices,
    projection_checkpoints,
)
from service.store.views import report_reads
from service.store.views.leases import INVOICES_PROJECTION

# The longest period a collections report spans (ten years), in days.
COLLECTION_DAYS_MAX = 3660


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
        self, invoice_number: str, organizations: OrganizationScope = None
    ) -> Sequence[Row[Any]]:
        """The invoices with this number: in the organizations named, else in every one; each
        row with the projection position it reflects (``projection_position``)."""
        checkpoint = projection_checkpoints.c
        position = select(checkpoint.position).where(checkpoint.name == INVOICES_PROJECTION)
        # The projection position the rows reflect, in the same statement (one round trip).
        query = select(invoices, position.scalar_subquery().label("projection_position"))
        query = query.where(invoices.c.invoice_number == invoice_number)
        query = query.where(*in_organization(invoices, organizations))
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            if is_postgresql(self._engine):
                # One statement needs no transaction: without one it is one round trip, not
                # three (BEGIN, the statement, ROLLBACK).
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            return (await connection.execute(query.order_by(invoices.c.organization_id))).all()

    async def invoices(
        self,
        filters: InvoiceFilters,
        limit: int,
        after: PageKey | None,
        *,
        newest_first: bool = False,
    ) -> Sequence[Row[Any]]:
        """A page by (updated_at, organization, number), oldest first (a client following
        changes), or newest first (a person looking at what changed lately)."""
        query = invoices_page(filters, limit, after, newest_first=newest_first)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            await with_custom_plans(connection)
            return (await connection.execute(query)).all()

    async def invoice_pages(
        self, filters: InvoiceFilters, page_rows: int, after: PageKey | None, pages_max: int
    ) -> AsyncIterator[Sequence[Row[Any]]]:
        """Every page of invoices from ``after`` on, read in one transaction (on PostgreSQL a
        REPEATABLE READ snapshot, so an invoice updated meanwhile is not listed twice)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            if is_postgresql(self._engine):
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                await with_custom_plans(connection)
                for _ in range(pages_max):
                    query = invoices_page(filters, page_rows, after)
                    rows = (await connection.execute(query)).all()
                    if rows:
                        yield rows
                    if len(rows) < page_rows:
                        return
                    last = rows[-1]
                    after = PageKey(last.updated_at, last.organization_id, last.invoice_number)
        raise ExportTooLarge(f"more than {pages_max} pages of {page_rows} invoices")

    async def outstanding(
        self, as_of: datetime | None, organizations: OrganizationScope = None
    ) -> list[dict[str, Any]]:
        """Per currency: open invoices and their balance, now or at a past provider time."""
        if as_of is None:
            by_currency: dict[str | None, PartialSum] = {}
            for row in await self._totals(organizations, invoice_totals.c.status.in_(OPEN)):
                currency = row.currency or None
                balance = PartialSum(
                    row.invoices, row.invoices_without_balance, row.balance_amount,
                    row.provisional_balance_amount,
                )  # fmt: skip
                by_currency[currency] = by_currency.get(currency, PartialSum()) + balance
            sums = [(currency, balance.rows, balance) for currency, balance in by_currency.items()]
        else:
            async with unavailability_as_store_error(), self._engine.connect() as connection:
                balances = await report_reads.open_balances(
                    connection, as_of, inclusive=True, organizations=organizations
                )
            by_currency = {}
            for (currency, _bucket), balance in balances.items():
                by_currency[currency] = by_currency.get(currency, PartialSum()) + balance
            sums = [(currency, balance.rows, balance) for currency, balance in by_currency.items()]
        return outstanding_items(sums)

    async def outstanding_from_history(
        self, as_of: datetime, organizations: OrganizationScope = None
    ) -> list[dict[str, Any]]:
        """``outstanding`` as of ``as_of`` read from the state history itself: what the report
        aggregates must agree with (tests hold them to it)."""
        groups = await self._grouped_sums(
            invoice_versions,
            [invoice_versions.c.currency],
            {
                "balance": Summed(
                    invoice_versions.c.balance_amount,
                    provisional=invoice_versions.c.balance_provisional,
                )
            },
            [
                invoice_versions.c.status.in_(OPEN),
                valid_at(as_of),
                *in_organization(invoice_versions, organizations),
            ],
        )
        return outstanding_items(
            [(group.key[0], group.rows, group.sums["balance"]) for group in groups]
        )

    async def aging(
        self, as_of: date, organizations: OrganizationScope = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """Open balances by days past due at the end of ``as_of`` (in ``zone``), from the
        report aggregates: the end of a day in any zone is an instant they answer exactly."""
        end_of_day = start_of_day_after(as_of, zone) or datetime.max.replace(tzinfo=UTC)
        bounds = aging_bounds(as_of)
        names = {at: name for at, name in enumerate(AGING_BUCKETS[:5])}
        names[report_reads.NO_DUE_DATE_BUCKET] = "noDueDate"
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            balances = await report_reads.open_balances(
                connection, end_of_day, inclusive=False, organizations=organizations,
                buckets=report_reads.DueDateBuckets(bounds),
            )  # fmt: skip
        by_currency: dict[str | None, dict[str, PartialSum]] = {}
        for (currency, bucket), balance in balances.items():
            buckets = by_currency.setdefault(currency, dict.fromkeys(AGING_BUCKETS, PartialSum()))
            buckets[names[bucket]] = buckets[names[bucket]] + balance
        groups = [
            GroupSums((currency,), sum(partial.rows for partial in buckets.values()), buckets)
            for currency, buckets in by_currency.items()
        ]
        return aging_items(groups)

    async def aging_from_history(
        self, as_of: date, organizations: OrganizationScope = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """``aging`` read from the state history itself: what the report aggregates must agree
        with (tests hold them to it)."""
        groups = await self._aging_groups(as_of, organizations, zone, by_customer=False)
        return aging_items(groups)

    async def aging_by_customer(
        self, as_of: date, organizations: OrganizationScope = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """The aging report with a row per organization, customer (name and email, as the
        invoice states them) and currency: its rows add up to ``aging``'s."""
        groups = await self._aging_groups(as_of, organizations, zone, by_customer=True)
        items = [
            {
                "organization_id": group.key[1],
                "customer_name": group.key[2],
                "customer_email": group.key[3],
                "currency": group.key[0],
                **{name: group.sums[name].amount for name in AGING_BUCKETS},
                "provisional_balance": across_buckets(group).provisional_amount,
                "incomplete": group.incomplete,
            }
            for group in groups
        ]
        return sorted(items, key=customer_order)

    async def _aging_groups(
        self, as_of: date, organizations: OrganizationScope, zone: tzinfo, *, by_customer: bool
    ) -> list[GroupSums]:
        end_of_day = start_of_day_after(as_of, zone) or datetime.max.replace(tzinfo=UTC)
        versions = invoice_versions.c
        source: Any = invoice_versions
        keys: list[ColumnElement[Any]] = [versions.currency]
        if by_customer:
            source = invoice_versions.outerjoin(
                invoices,
                and_(
                    invoices.c.organization_id == versions.organization_id,
                    invoices.c.invoice_number == versions.invoice_number,
                ),
            )
            keys += [versions.organization_id, invoices.c.customer_name, invoices.c.customer_email]
        buckets = aging_buckets(as_of, versions.due_date)
        return await self._grouped_sums(
            source,
            keys,
            {
                name: Summed(
                    versions.balance_amount, counted=rule, provisional=versions.balance_provisional
                )
                for name, rule in buckets.items()
            },
            [
                versions.status.in_(OPEN),
                valid_before(end_of_day),
                *in_organization(invoice_versions, organizations),
            ],
        )

    async def collections(
        self,
        start: date,
        end: date,
        interval: Interval,
        organizations: OrganizationScope = None,
        zone: tzinfo = UTC,
    ) -> list[dict[str, Any]]:
        """Money collected per period and currency, days beginning at midnight in ``zone``; a
        collection of unknown amount makes its period's row incomplete.

        Days in UTC are read from the daily report aggregate; days beginning at another
        zone's midnight are not UTC days: PostgreSQL sums the UTC days a period covers whole
        from the aggregate and the days its ends split from the collections; SQLite sums the
        collections."""
        if is_utc(zone):
            async with unavailability_as_store_error(), self._engine.connect() as connection:
                periods = await report_reads.collections_by_period(
                    connection, start, end, interval, organizations
                )
            return collection_items(
                ((period_of(first_day, interval), currency), amount)
                for (currency, first_day), amount in periods.items()
            )
        if is_postgresql(self._engine) and zoned_collections.answers(start, end):
            async with unavailability_as_store_error(), self._engine.connect() as connection:
                periods = await zoned_collections.collections_in_zone(
                    connection, start, end, interval, organizations, zone
                )
            return collection_items(
                ((period_of(first_day, interval), currency), amount)
                for (currency, first_day), amount in periods.items()
            )
        return await self.collections_from_history(start, end, interval, organizations, zone)

    async def collections_from_history(
        self,
        start: date,
        end: date,
        interval: Interval,
        organizations: OrganizationScope = None,
        zone: tzinfo = UTC,
    ) -> list[dict[str, Any]]:
        """``collections`` summed from the collections themselves (any zone; the oracle the
        daily aggregate is tested against)."""
        collected = invoice_collections.c
        day = local_day(collected.collected_at, zone, is_postgresql(self._engine))
        within = []
        if (first_instant := start_of_day(start, zone)) is not None:
            within.append(collected.collected_at >= first_instant)
        if (after_end := start_of_day_after(end, zone)) is not None:
            within.append(collected.collected_at < after_end)
        groups = await self._grouped_sums(
            invoice_collections,
            [collected.currency, day],
            {"amount": Summed(collected.amount, provisional=collected.provisional)},
            [*within, *in_organization(invoice_collections, organizations)],
        )
        pairs = []
        for group in groups:
            currency, day_collected = group.key
            if not isinstance(day_collected, date):  # SQLite answers with text
                day_collected = day_of_text(day_collected, zone)
            pairs.append(((period_of(day_collected, interval), currency), group.sums["amount"]))
        return collection_items(pairs)

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

    async def by_status(self, organizations: OrganizationScope = None) -> list[dict[str, Any]]:
        """Per status and currency: invoices, and the sums of their totals and balances."""
        by_key: dict[tuple[str | None, str | None], tuple[PartialSum, PartialSum]] = {}
        for row in await self._totals(organizations):
            key = (row.status or None, row.currency or None)
            total = PartialSum(
                row.invoices, row.invoices_without_total, row.total_amount,
                row.provisional_total_amount,
            )  # fmt: skip
            balance = PartialSum(
                row.invoices, row.invoices_without_balance, row.balance_amount,
                row.provisional_balance_amount,
            )  # fmt: skip
            known_total, known_balance = by_key.get(key, (PartialSum(), PartialSum()))
            by_key[key] = (known_total + total, known_balance + balance)
        items = [
            {
                "status": status,
                "currency": currency,
                "invoices": total.rows,
                "total": total.amount,
                "balance": balance.amount,
                "provisional_total": total.provisional_amount,
                "provisional_balance": balance.provisional_amount,
                "incomplete": total.incomplete or balance.incomplete,
            }
            for (status, currency), (total, balance) in by_key.items()
        ]
        return sorted(items, key=report_order)

    async def _totals(
        self, organizations: OrganizationScope, *conditions: ColumnElement[bool]
    ) -> Sequence[Row[Any]]:
        """invoice_totals rows: a handful per organization, added up in Python, exactly."""
        return await self._all(
            select(invoice_totals).where(
                invoice_totals.c.invoices > 0,
                *conditions,
                *in_organization(invoice_totals, organizations),
            )
        )
