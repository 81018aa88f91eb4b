"""Reading the report aggregates (see views/report_aggregates.py): open balances as of any moment,
collections per period, summed to the report's grain.

PostgreSQL sums NUMERIC exactly, so there each query groups to the report's grain (currency and
due-date bucket, currency and period) and answers a few dozen rows. SQLite keeps amounts as
text and would sum them in floating point: there the rows are read and added up here, exactly,
as service.store.exact_sums does, and grouped to the same grain on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Date, DateTime, String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.identity import OrganizationScope
from service.domain.reports import Interval
from service.store.exact_sums import PartialSum
from service.store.organization_scope import in_scope
from service.store.schema import (
    invoice_versions,
    report_daily_collections,
    report_open_balance_changes,
    report_open_balance_totals,
)
from service.store.views.report_change import (
    NO_DUE_DATE,
    OPEN,
    ReportChange,
    day_number,
    stored_change,
    utc_day_number,
)

NO_DUE_DATE_BUCKET = -1
# Day ordinals in PostgreSQL: ordinal 1 (0001-01-01, as date.toordinal() counts) is Julian day
# 1,721,426. (Not a date parameter: asyncpg sends date.min as -infinity.)
JULIAN_DAY_OF_ORDINAL_ZERO = 1_721_425


@dataclass(frozen=True, slots=True)
class DueDateBuckets:
    """How open balances are grouped by due date: ``bounds`` in descending order; a due date
    falls in the bucket of the first bound it reaches (0, 1, …), past them all in the bucket
    ``len(bounds)``; no due date is NO_DUE_DATE_BUCKET. No bounds: every due date in one."""

    bounds: tuple[date, ...] = ()

    def of(self, due: date | None) -> int:
        if due is None:
            return NO_DUE_DATE_BUCKET
        return next((at for at, bound in enumerate(self.bounds) if due >= bound), len(self.bounds))

    def of_due_date(self, due: ColumnElement[Any]) -> ColumnElement[int]:
        """``of`` in SQL, on a due date column."""
        reached = [(due >= bound, at) for at, bound in enumerate(self.bounds)]
        return case((due.is_(None), NO_DUE_DATE_BUCKET), *reached, else_=len(self.bounds))

    def of_due_day(self, due_day: ColumnElement[Any]) -> ColumnElement[int]:
        """``of`` in SQL, on a due day ordinal column (NO_DUE_DATE for none)."""
        reached = [(due_day >= day_number(bound), at) for at, bound in enumerate(self.bounds)]
        return case((due_day == NO_DUE_DATE, NO_DUE_DATE_BUCKET), *reached, else_=len(self.bounds))


async def open_balances(
    connection: AsyncConnection,
    moment: datetime,
    *,
    inclusive: bool,
    organizations: OrganizationScope,
    buckets: DueDateBuckets = DueDateBuckets(),
) -> dict[tuple[str | None, int], PartialSum]:
    """Per (currency, due-date bucket): the open invoices in force at ``moment`` (valid from at
    or before it and to after it when ``inclusive``; else valid from before it and to at or
    after it: the state in force just before ``moment``), their known balance and how many
    lack one."""
    columns = report_open_balance_changes.c
    day = utc_day_number(moment)
    first, last = (
        await connection.execute(select(func.min(columns.day), func.max(columns.day)))
    ).one()
    if first is not None and day > (first + last) // 2:
        # Nearer the last day of change: every day's total less the days from ``day`` on.
        changes = await _summed(connection, report_open_balance_totals, [], organizations, buckets)
        later = await _summed(
            connection, report_open_balance_changes, [columns.day >= day], organizations, buckets
        )
        for key, change in later.items():
            changes[key] = changes.get(key, ReportChange()).minus(change)
    else:
        changes = await _summed(
            connection, report_open_balance_changes, [columns.day < day], organizations, buckets
        )
    for key, change in (await _moments_own_day(connection, moment, inclusive, organizations,
                                                buckets)).items():  # fmt: skip
        changes[key] = changes.get(key, ReportChange()).merged(change)
    found: dict[tuple[str | None, int], PartialSum] = {}
    for (currency, bucket), change in changes.items():
        in_force = change.in_force
        if in_force.rows:
            found[(currency or None, bucket)] = in_force
    return found


async def _moments_own_day(
    connection: AsyncConnection,
    moment: datetime,
    inclusive: bool,
    organizations: OrganizationScope,
    buckets: DueDateBuckets,
) -> dict[tuple[str, int], ReportChange]:
    """The moment's own UTC day, exactly, from the state rows that began or ended on it."""
    first_of_day = datetime.combine(moment.astimezone(UTC).date(), time(), UTC)
    versions = invoice_versions.c
    organization = in_scope(versions.organization_id, organizations)
    bucket = buckets.of_due_date(versions.due_date)
    changes: dict[tuple[str, int], ReportChange] = {}
    for column, closing in ((versions.valid_from, False), (versions.valid_to, True)):
        edge = column <= moment if inclusive else column < moment
        where = [versions.status.in_(sorted(OPEN)), column >= first_of_day, edge, *organization]
        if connection.dialect.name == "postgresql":
            unknown = func.count(case((versions.balance_amount.is_(None), 1)))
            provisional = func.sum(case((versions.balance_provisional, versions.balance_amount)))
            query = select(
                versions.currency, bucket, func.count(), unknown,
                func.coalesce(func.sum(versions.balance_amount), 0),
                func.coalesce(provisional, 0),
            ).where(*where).group_by(versions.currency, bucket)  # fmt: skip
            for row in await connection.execute(query):
                counts = (int(row[2]), int(row[3]))
                change = ReportChange()
                if closing:
                    change.closed, change.closed_unknown = counts
                    change.amount_closed, change.provisional_closed = row[4], row[5]
                else:
                    change.opened, change.opened_unknown = counts
                    change.amount_opened, change.provisional_opened = row[4], row[5]
                key = (row[0] or "", int(row[1]))
                changes[key] = changes.get(key, ReportChange()).merged(change)
            continue
        partial = select(
            versions.currency, versions.due_date, versions.balance_amount,
            versions.balance_provisional,
        ).where(*where)  # fmt: skip
        for edge_row in await connection.execute(partial):
            key = (edge_row.currency or "", buckets.of(edge_row.due_date))
            changes.setdefault(key, ReportChange()).add(
                +1, closing, edge_row.balance_amount, edge_row.balance_provisional
            )
    return changes


async def _summed(
    connection: AsyncConnection,
    table: Any,
    where: Sequence[ColumnElement[bool]],
    organizations: OrganizationScope,
    buckets: DueDateBuckets,
) -> dict[tuple[str, int], ReportChange]:
    """Per (currency, due-date bucket): the rows of ``table`` meeting ``where``, added up."""
    columns = table.c
    where = [*where, *in_scope(columns.organization_id, organizations)]
    changes: dict[tuple[str, int], ReportChange] = {}
    if connection.dialect.name == "postgresql":
        bucket = buckets.of_due_day(columns.due_day)
        query = (
            select(
                columns.currency,
                bucket,
                func.sum(columns.opened),
                func.sum(columns.closed),
                func.sum(columns.opened_without_balance),
                func.sum(columns.closed_without_balance),
                func.sum(columns.balance_opened),
                func.sum(columns.balance_closed),
                func.sum(columns.provisional_balance_opened),
                func.sum(columns.provisional_balance_closed),
            )
            .where(*where)
            .group_by(columns.currency, bucket)
        )
        for row in await connection.execute(query):
            changes[(row[0], int(row[1]))] = ReportChange(
                int(row[2]), int(row[3]), int(row[4]), int(row[5]), *row[6:10]
            )
        return changes
    async with connection.stream(select(table).where(*where)) as result:
        async for row in result:
            key = (row.currency, buckets.of(_due_date_of(row.due_day)))
            stored = stored_change(table, row._mapping)
            changes[key] = changes.get(key, ReportChange()).merged(stored)
    return changes


def _due_date_of(due_day: int) -> date | None:
    return None if due_day == NO_DUE_DATE else date.fromordinal(due_day)


async def collections_by_period(
    connection: AsyncConnection,
    first: date,
    last: date,
    interval: Interval,
    organizations: OrganizationScope,
) -> dict[tuple[str | None, date], PartialSum]:
    """Per (currency, first day of its period) from UTC day ``first`` to ``last``:
    collections and their known sum."""
    columns = report_daily_collections.c
    where = [columns.day >= day_number(first), columns.day <= day_number(last)]
    where.extend(in_scope(columns.organization_id, organizations))
    found: dict[tuple[str | None, date], PartialSum] = {}
    if connection.dialect.name == "postgresql":
        period = _period_start(columns.day, interval)
        query = select(
            columns.currency, period, func.sum(columns.collections),
            func.sum(columns.without_amount), func.sum(columns.amount),
            func.sum(columns.provisional_amount),
        ).where(*where).group_by(columns.currency, period)  # fmt: skip
        for row in await connection.execute(query):
            start = row[1] if isinstance(row[1], date) else date.fromordinal(row[1])
            partial = PartialSum(int(row[2]), int(row[3]), row[4], row[5])
            if partial.rows:
                found[(row[0] or None, start)] = partial
        return found
    for row in await connection.execute(select(report_daily_collections).where(*where)):
        key = (row.currency or None, period_start(date.fromordinal(row.day), interval))
        partial = PartialSum(
            row.collections, row.without_amount, row.amount, row.provisional_amount
        )
        found[key] = found.get(key, PartialSum()) + partial
    return {key: partial for key, partial in found.items() if partial.rows}


def period_start(day: date, interval: Interval) -> date:
    """The first day of the day's, week's (from Monday) or month's period ``day`` is in."""
    if interval == "day":
        return day
    if interval == "week":
        return date.fromordinal(day.toordinal() - day.weekday())
    return day.replace(day=1)


def _period_start(day: ColumnElement[Any], interval: Interval) -> ColumnElement[Any]:
    """``period_start`` in PostgreSQL, on a day ordinal: an ordinal for days and weeks (ordinal
    1 is a Monday), a date for months."""
    if interval == "day":
        return day
    if interval == "week":
        return day - (day - 1) % 7
    as_date = func.to_date(cast(day + JULIAN_DAY_OF_ORDINAL_ZERO, String), "J")
    return cast(func.date_trunc("month", cast(as_date, DateTime())), Date)
