"""Read-only queries over the invoice read models, for the API and its reports.

Every report sums only known amounts, in one currency per row, and says per row whether any
invoice in it lacked an amount the row sums (``incomplete``); a sum over no known amount is
None. Sums are exact Decimals on both engines (see ``service.store.exact_sums``). Beside each
sum, a row gives its provisional part (``provisional_…``): the amounts in it inferred from
notifications alone, which the sum includes; zero when none is, None only where the sum is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import InvoiceKey
from service.domain.status import OPEN_STATUSES
from service.store import report_aggregates
from service.store.database import is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.exact_sums import GroupSums, PartialSum, Summed, grouped_sums
from service.store.schema import invoice_collections, invoice_totals, invoice_versions, invoices

OPEN = sorted(status.value for status in OPEN_STATUSES)
Interval = Literal["day", "week", "month"]
AGING_BUCKETS = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")


@dataclass(frozen=True, slots=True)
class AgingBucketFilter:
    """The invoices in one bucket of the aging report as of the end of ``as_of`` in ``zone``;
    listed as they stood then (status, amounts and due date of the state in force)."""

    bucket: str
    as_of: date
    zone: tzinfo = UTC

    @property
    def end_of_day(self) -> datetime:
        return _start_of_day_after(self.as_of, self.zone) or datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    organization_id: str | None = None
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


def _report_order(item: dict[str, Any]) -> tuple[str, ...]:
    return (item.get("period", ""), item.get("status") or "", item["currency"] or "")


def _customer_order(item: dict[str, Any]) -> tuple[str, ...]:
    keys = ("organization_id", "customer_name", "customer_email", "currency")
    return tuple(item[key] or "" for key in keys)


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
        self,
        filters: InvoiceFilters,
        limit: int,
        after: PageKey | None,
        *,
        newest_first: bool = False,
    ) -> Sequence[Row[Any]]:
        """A page by (updated_at, organization, number), oldest first (a client following
        changes), or newest first (a person looking at what changed lately)."""
        return await self._all(_invoices_page(filters, limit, after, newest_first=newest_first))

    async def invoice_pages(
        self, filters: InvoiceFilters, page_rows: int, after: PageKey | None, pages_max: int
    ) -> AsyncIterator[Sequence[Row[Any]]]:
        """Every page of invoices from ``after`` on, read in one transaction (on PostgreSQL a
        REPEATABLE READ snapshot, so an invoice updated meanwhile is not listed twice)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            if is_postgresql(self._engine):
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                for _ in range(pages_max):
                    query = _invoices_page(filters, page_rows, after)
                    rows = (await connection.execute(query)).all()
                    if rows:
                        yield rows
                    if len(rows) < page_rows:
                        return
                    last = rows[-1]
                    after = PageKey(last.updated_at, last.organization_id, last.invoice_number)
        raise ExportTooLarge(f"more than {pages_max} pages of {page_rows} invoices")

    async def outstanding(
        self, as_of: datetime | None, organization_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per currency: open invoices and their balance, now or at a past provider time."""
        if as_of is None:
            by_currency: dict[str | None, PartialSum] = {}
            for row in await self._totals(organization_id, invoice_totals.c.status.in_(OPEN)):
                currency = row.currency or None
                balance = PartialSum(
                    row.invoices, row.invoices_without_balance, row.balance_amount,
                    row.provisional_balance_amount,
                )  # fmt: skip
                by_currency[currency] = by_currency.get(currency, PartialSum()) + balance
            sums = [(currency, balance.rows, balance) for currency, balance in by_currency.items()]
        else:
            async with unavailability_as_store_error(), self._engine.connect() as connection:
                balances = await report_aggregates.open_balances(
                    connection, as_of, inclusive=True, organization_id=organization_id
                )
            by_currency = {}
            for (currency, _due), balance in balances.items():
                by_currency[currency] = by_currency.get(currency, PartialSum()) + balance
            sums = [(currency, balance.rows, balance) for currency, balance in by_currency.items()]
        return _outstanding_items(sums)

    async def outstanding_from_history(
        self, as_of: datetime, organization_id: str | None = None
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
                _valid_at(as_of),
                *_in_organization(invoice_versions, organization_id),
            ],
        )
        return _outstanding_items(
            [(group.key[0], group.rows, group.sums["balance"]) for group in groups]
        )

    async def aging(
        self, as_of: date, organization_id: str | None = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """Open balances by days past due at the end of ``as_of`` (in ``zone``), from the
        report aggregates: the end of a day in any zone is an instant they answer exactly."""
        end_of_day = _start_of_day_after(as_of, zone) or datetime.max.replace(tzinfo=UTC)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            balances = await report_aggregates.open_balances(
                connection, end_of_day, inclusive=False, organization_id=organization_id
            )
        rules = _aging_rules(as_of)
        by_currency: dict[str | None, dict[str, PartialSum]] = {}
        for (currency, due), balance in balances.items():
            buckets = by_currency.setdefault(currency, dict.fromkeys(AGING_BUCKETS, PartialSum()))
            bucket = next(name for name, rule in rules.items() if rule(due))
            buckets[bucket] = buckets[bucket] + balance
        groups = [
            GroupSums((currency,), sum(partial.rows for partial in buckets.values()), buckets)
            for currency, buckets in by_currency.items()
        ]
        return _aging_items(groups)

    async def aging_from_history(
        self, as_of: date, organization_id: str | None = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """``aging`` read from the state history itself: what the report aggregates must agree
        with (tests hold them to it)."""
        groups = await self._aging_groups(as_of, organization_id, zone, by_customer=False)
        return _aging_items(groups)

    async def aging_by_customer(
        self, as_of: date, organization_id: str | None = None, zone: tzinfo = UTC
    ) -> list[dict[str, Any]]:
        """The aging report with a row per organization, customer (name and email, as the
        invoice states them) and currency: its rows add up to ``aging``'s."""
        groups = await self._aging_groups(as_of, organization_id, zone, by_customer=True)
        items = [
            {
                "organization_id": group.key[1],
                "customer_name": group.key[2],
                "customer_email": group.key[3],
                "currency": group.key[0],
                **{name: group.sums[name].amount for name in AGING_BUCKETS},
                "provisional_balance": _across_buckets(group).provisional_amount,
                "incomplete": group.incomplete,
            }
            for group in groups
        ]
        return sorted(items, key=_customer_order)

    async def _aging_groups(
        self, as_of: date, organization_id: str | None, zone: tzinfo, *, by_customer: bool
    ) -> list[GroupSums]:
        end_of_day = _start_of_day_after(as_of, zone) or datetime.max.replace(tzinfo=UTC)
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
        buckets = _aging_buckets(as_of, versions.due_date)
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
                _valid_before(end_of_day),
                *_in_organization(invoice_versions, organization_id),
            ],
        )

    async def collections(
        self,
        start: date,
        end: date,
        interval: Interval,
        organization_id: str | None = None,
        zone: tzinfo = UTC,
    ) -> list[dict[str, Any]]:
        """Money collected per period and currency, days beginning at midnight in ``zone``; a
        collection of unknown amount makes its period's row incomplete.

        Days in UTC are read from the daily report aggregate; days beginning at another
        zone's midnight are not UTC days, so those are summed from the collections."""
        if _is_utc(zone):
            async with unavailability_as_store_error(), self._engine.connect() as connection:
                daily = await report_aggregates.daily_collections(
                    connection, start, end, organization_id
                )
            return _collection_items(
                ((period_of(day, interval), currency), amount)
                for (currency, day), amount in daily.items()
            )
        return await self.collections_from_history(start, end, interval, organization_id, zone)

    async def collections_from_history(
        self,
        start: date,
        end: date,
        interval: Interval,
        organization_id: str | None = None,
        zone: tzinfo = UTC,
    ) -> list[dict[str, Any]]:
        """``collections`` summed from the collections themselves (any zone; the oracle the
        daily aggregate is tested against)."""
        collected = invoice_collections.c
        day = self._local_day(collected.collected_at, zone)
        within = []
        if (first_instant := _start_of_day(start, zone)) is not None:
            within.append(collected.collected_at >= first_instant)
        if (after_end := _start_of_day_after(end, zone)) is not None:
            within.append(collected.collected_at < after_end)
        groups = await self._grouped_sums(
            invoice_collections,
            [collected.currency, day],
            {"amount": Summed(collected.amount, provisional=collected.provisional)},
            [*within, *_in_organization(invoice_collections, organization_id)],
        )
        pairs = []
        for group in groups:
            currency, day_collected = group.key
            if not isinstance(day_collected, date):  # SQLite answers with text
                day_collected = _day_of_text(day_collected, zone)
            pairs.append(((period_of(day_collected, interval), currency), group.sums["amount"]))
        return _collection_items(pairs)

    def _local_day(self, instant: ColumnElement[Any], zone: tzinfo) -> ColumnElement[Any]:
        """The day of a stored instant in ``zone``: PostgreSQL converts it with its own time
        zone database; SQLite has none, so there the instant (to the second) is the key and
        its day in ``zone`` is found here (SQLite sums in Python, reading every row anyway)."""
        if _is_utc(zone):
            return self._utc_day(instant)
        if is_postgresql(self._engine):
            return func.date(func.timezone(str(getattr(zone, "key", zone)), instant))
        return func.substr(instant, 1, 19)

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


def _outstanding_items(sums: Sequence[tuple[str | None, int, PartialSum]]) -> list[dict[str, Any]]:
    items = [
        {
            "currency": currency,
            "invoices": count,
            "balance": balance.amount,
            "provisional_balance": balance.provisional_amount,
            "incomplete": balance.incomplete,
        }
        for currency, count, balance in sums
    ]
    return sorted(items, key=_report_order)


def _aging_items(groups: Sequence[GroupSums]) -> list[dict[str, Any]]:
    items = [
        {
            "currency": group.key[0],
            **{name: group.sums[name].amount for name in AGING_BUCKETS},
            "provisional_balance": _across_buckets(group).provisional_amount,
            "incomplete": group.incomplete,
        }
        for group in groups
    ]
    return sorted(items, key=_report_order)


def _across_buckets(group: GroupSums) -> PartialSum:
    """An aging row's balances in every bucket together (each invoice is in one bucket)."""
    return sum((group.sums[name] for name in AGING_BUCKETS), PartialSum())


def _collection_items(
    sums: Iterable[tuple[tuple[str, str | None], PartialSum]],
) -> list[dict[str, Any]]:
    by_period: dict[tuple[str, str | None], PartialSum] = {}
    for key, amount in sums:
        by_period[key] = by_period.get(key, PartialSum()) + amount
    items = [
        {
            "period": period,
            "currency": currency,
            "amount": amount.amount,
            "provisional_amount": amount.provisional_amount,
            "incomplete": amount.incomplete,
        }
        for (period, currency), amount in by_period.items()
    ]
    return sorted(items, key=_report_order)


def _is_utc(zone: tzinfo) -> bool:
    return zone is UTC or getattr(zone, "key", None) == "UTC"


def _aging_rules(as_of: date) -> dict[str, Callable[[date | None], bool]]:
    """``_aging_buckets``' rules, on a due date in hand (None: no due date)."""
    days_30, days_60, days_90 = (_days_before(as_of, days) for days in (30, 60, 90))
    return {
        "noDueDate": lambda due: due is None,
        "current": lambda due: due is not None and due >= as_of,
        "days1To30": lambda due: due is not None and days_30 <= due < as_of,
        "days31To60": lambda due: due is not None and days_60 <= due < days_30,
        "days61To90": lambda due: due is not None and days_90 <= due < days_60,
        "over90": lambda due: due is not None and due < days_90,
    }


def _invoices_page(
    filters: InvoiceFilters, limit: int, after: PageKey | None, *, newest_first: bool = False
) -> Any:
    """A page of invoices by (updated_at, organization, number), after ``after`` (before it,
    newest first)."""
    columns = invoices.c
    # Behind an aging bucket, invoices are listed as they stood then, and filtered so.
    state = columns if filters.aging is None else invoice_versions.c
    conditions = []
    if filters.organization_id is not None:
        conditions.append(columns.organization_id == filters.organization_id)
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


def _in_aging_bucket(aging: AgingBucketFilter) -> Any:
    """The invoices whose state at the end of the day was open and in the bucket (the aging
    report's own rules, so their balances add up to the bucket), with that state's status,
    currency, amounts (and whether they were provisional) and due date; at most one state is
    in force at an instant, so each invoice is one row."""
    versions = invoice_versions.c
    rule = _aging_buckets(aging.as_of, versions.due_date)[aging.bucket]
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
                _valid_before(aging.end_of_day),
                rule,
            ),
        )
    )


def _aging_buckets(as_of: date, due: ColumnElement[Any]) -> dict[str, ColumnElement[bool]]:
    """Each aging bucket's rule on a due date, by days past due on ``as_of``."""
    days_30, days_60, days_90 = (_days_before(as_of, days) for days in (30, 60, 90))
    return {
        "current": due >= as_of,
        "days1To30": and_(due < as_of, due >= days_30),
        "days31To60": and_(due < days_30, due >= days_60),
        "days61To90": and_(due < days_60, due >= days_90),
        "over90": due < days_90,
        "noDueDate": due.is_(None),
    }


def _day_of_text(text: str, zone: tzinfo) -> date:
    """The day in ``zone`` of SQLite's text for a UTC instant (or of its day, in UTC)."""
    if len(text) == 10:
        return date.fromisoformat(text)
    instant = datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
    try:
        return instant.astimezone(zone).date()
    except OverflowError:  # beyond year 9999 or before year 1 in that zone
        return instant.date()


def _days_before(day: date, days: int) -> date:
    """``day`` less ``days``, or the first day there is (no invoice is due before it)."""
    return day - timedelta(days=days) if day - date.min >= timedelta(days=days) else date.min


def _start_of_day_after(day: date, zone: tzinfo = UTC) -> datetime | None:
    """Midnight after ``day`` in ``zone``, in UTC; None after the last day there is (no
    instant follows it)."""
    return None if day == date.max else _start_of_day(day + timedelta(days=1), zone)


def _start_of_day(day: date, zone: tzinfo) -> datetime | None:
    """The first instant of ``day`` in ``zone``, in UTC; None beyond the last instant there
    is (the last day's midnight in a zone east of UTC is still within datetime's range)."""
    try:
        return datetime.combine(day, time(), zone).astimezone(UTC)
    except OverflowError:
        return None if day.year > 1 else datetime.min.replace(tzinfo=UTC)


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


def period_days(label: str, interval: Interval) -> tuple[date, date]:
    """The first and last day of the period ``period_of`` labelled ``label``."""
    if interval == "day":
        day = date.fromisoformat(label)
        return day, day
    if interval == "week":
        monday = date.fromisoformat(label)
        return monday, min(monday, date.max - timedelta(days=6)) + timedelta(days=6)
    first = date.fromisoformat(f"{label}-01")
    if first.month == 12:  # (year 9999 has no following month to count back from)
        return first, date(first.year, 12, 31)
    return first, date(first.year, first.month + 1, 1) - timedelta(days=1)


def period_of(day: date, interval: Interval) -> str:
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday it starts
    # Not strftime("%Y"): it does not pad a year before 1000 to four digits on every platform.
    return f"{day.year:04d}-{day.month:02d}"
