"""Reading the report aggregates (see views/report_aggregates.py): open balances as of any moment,
collections per day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.exact_sums import PartialSum
from service.store.schema import (
    invoice_versions,
    report_daily_collections,
    report_open_balance_changes,
    report_open_balance_totals,
)
from service.store.views.report_change import (
    OPEN,
    ReportChange,
    day_number,
    due_date_of,
    due_day_number,
    stored_change,
    utc_day_number,
)


async def open_balances(
    connection: AsyncConnection,
    moment: datetime,
    *,
    inclusive: bool,
    organization_id: str | None,
) -> dict[tuple[str | None, date | None], PartialSum]:
    """Per (currency, due date): the open invoices in force at ``moment`` (valid from at or
    before it and to after it when ``inclusive``; else valid from before it and to at or after
    it: the state in force just before ``moment``), their known balance and how many lack one.
    """
    first_of_day = datetime.combine(moment.astimezone(UTC).date(), time(), UTC)
    day = utc_day_number(moment)
    columns = report_open_balance_changes.c
    first, last = (
        await connection.execute(select(func.min(columns.day), func.max(columns.day)))
    ).one()
    if first is not None and day > (first + last) // 2:
        # Nearer the last day of change: every day's total less the days from ``day`` on.
        changes = await _summed(connection, report_open_balance_totals, [], organization_id)
        later = await _summed(
            connection, report_open_balance_changes, [columns.day >= day], organization_id
        )
        for key, change in later.items():
            changes[key] = changes.get(key, ReportChange()).minus(change)
    else:
        changes = await _summed(
            connection, report_open_balance_changes, [columns.day < day], organization_id
        )
    # The moment's own UTC day, exactly, from the state rows that began or ended on it.
    versions = invoice_versions.c
    organization = [] if organization_id is None else [versions.organization_id == organization_id]
    for column, closing in ((versions.valid_from, False), (versions.valid_to, True)):
        edge = column <= moment if inclusive else column < moment
        partial = select(
            versions.currency, versions.due_date, versions.balance_amount,
            versions.balance_provisional,
        ).where(
            versions.status.in_(sorted(OPEN)), column >= first_of_day, edge, *organization
        )  # fmt: skip
        for edge_row in await connection.execute(partial):
            key = (edge_row.currency or "", due_day_number(edge_row.due_date))
            changes.setdefault(key, ReportChange()).add(
                +1, closing, edge_row.balance_amount, edge_row.balance_provisional
            )
    found: dict[tuple[str | None, date | None], PartialSum] = {}
    for (currency, due_day), change in changes.items():
        in_force = change.in_force
        if in_force.rows:
            found[(currency or None, due_date_of(due_day))] = in_force
    return found


async def _summed(
    connection: AsyncConnection,
    table: Any,
    where: Sequence[ColumnElement[bool]],
    organization_id: str | None,
) -> dict[tuple[str, int], ReportChange]:
    """Per (currency, due day): the rows of ``table`` meeting ``where``, added up."""
    columns = table.c
    if organization_id is not None:
        where = [*where, columns.organization_id == organization_id]
    changes: dict[tuple[str, int], ReportChange] = {}
    if connection.dialect.name == "postgresql":
        query = (
            select(
                columns.currency,
                columns.due_day,
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
            .group_by(columns.currency, columns.due_day)
        )
        for row in await connection.execute(query):
            changes[(row[0], row[1])] = ReportChange(
                int(row[2]), int(row[3]), int(row[4]), int(row[5]), *row[6:10]
            )
        return changes
    async with connection.stream(select(table).where(*where)) as result:
        async for row in result:
            key = (row.currency, row.due_day)
            stored = stored_change(table, row._mapping)
            changes[key] = changes.get(key, ReportChange()).merged(stored)
    return changes


async def daily_collections(
    connection: AsyncConnection, first: date, last: date, organization_id: str | None
) -> dict[tuple[str | None, date], PartialSum]:
    """Per (currency, UTC day) from ``first`` to ``last``: collections and their known sum."""
    columns = report_daily_collections.c
    where = [columns.day >= day_number(first), columns.day <= day_number(last)]
    if organization_id is not None:
        where.append(columns.organization_id == organization_id)
    found: dict[tuple[str | None, date], PartialSum] = {}
    for row in await connection.execute(select(report_daily_collections).where(*where)):
        key = (row.currency or None, date.fromordinal(row.day))
        partial = PartialSum(
            row.collections, row.without_amount, row.amount, row.provisional_amount
        )
        found[key] = found.get(key, PartialSum()) + partial
    return {key: partial for key, partial in found.items() if partial.rows}
