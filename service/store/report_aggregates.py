"""Day-bucketed report aggregates, kept by the projector beside the read rows.

The aging and outstanding reports as of a past moment ask which state every invoice was in
then; reading ``invoice_versions`` for that costs a scan of the whole history. Instead, each
open state row contributes to ``report_open_balance_changes`` twice: it *opens* on the UTC day
it became valid (one invoice, its balance, or one invoice without a known balance) and
*closes* on the UTC day it stopped being valid. Per (organization, currency, due date, UTC
day) the table keeps how much opened and how much closed; the state in force at an instant is
then what opened minus what closed on the days before that instant's UTC day, plus the few
state rows that began or ended on its own day up to the instant, read exactly from
``invoice_versions`` (indexed on ``valid_from`` and on ``valid_to``). Any time zone is served
exactly that way, since the end of a day in any zone is just an instant.

Collections are summed per (organization, currency, UTC day) in ``report_daily_collections``;
a collections report whose days begin in another zone reads the collections themselves.

Amounts opened and closed are kept apart, each a sum of non-negative amounts, so both columns
stay exact non-negative amounts on either engine (SQLite keeps them as text and never sums
them: sums are made here, in Python, as ``service.store.exact_sums`` does). Unknown amounts are
counted, never summed as zero. Beside each sum, its provisional part (the amounts inferred
from notifications alone, of the state rows whose balance and the collections whose amount
is provisional) is kept the same way.

The projector records the change of every batch in the transaction that writes its read rows
and checkpoint (``record_changes``): the rows it is about to replace are read and taken away,
the rows it writes are added. A rebuild recounts both tables from the rows it swapped in
(``recount``), so rebuilt and incremental aggregates are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.status import OPEN_STATUSES
from service.store.exact_sums import EXACT, PartialSum
from service.store.schema import (
    invoice_collections,
    invoice_versions,
    invoices,
    report_daily_collections,
    report_open_balance_changes,
    report_open_balance_totals,
)

OPEN = frozenset(status.value for status in OPEN_STATUSES)
NO_DUE_DATE = 0  # as a due day: date ordinals start at 1
KEYS_PER_STATEMENT = 500
ZERO = Decimal(0)
TABLES = [report_open_balance_changes, report_open_balance_totals, report_daily_collections]


def day_number(day: date) -> int:
    return day.toordinal()


def utc_day_number(instant: datetime) -> int:
    return instant.astimezone(UTC).date().toordinal()


def due_day_number(due: date | None) -> int:
    return NO_DUE_DATE if due is None else due.toordinal()


def due_date_of(due_day: int) -> date | None:
    return None if due_day == NO_DUE_DATE else date.fromordinal(due_day)


@dataclass(slots=True)
class _Change:
    """Opened and closed invoices (all, and those without a known amount) and amounts, and
    the provisional part of each amount."""

    opened: int = 0
    closed: int = 0
    opened_unknown: int = 0
    closed_unknown: int = 0
    amount_opened: Decimal = ZERO
    amount_closed: Decimal = ZERO
    provisional_opened: Decimal = ZERO
    provisional_closed: Decimal = ZERO

    def add(self, sign: int, closing: bool, amount: Decimal | None, provisional: bool) -> None:
        unknown = 1 if amount is None else 0
        signed = sign * (amount or ZERO)
        signed_provisional = signed if provisional else ZERO
        if closing:
            self.closed += sign
            self.closed_unknown += sign * unknown
            self.amount_closed = EXACT.add(self.amount_closed, signed)
            self.provisional_closed = EXACT.add(self.provisional_closed, signed_provisional)
        else:
            self.opened += sign
            self.opened_unknown += sign * unknown
            self.amount_opened = EXACT.add(self.amount_opened, signed)
            self.provisional_opened = EXACT.add(self.provisional_opened, signed_provisional)

    def merged(self, other: _Change) -> _Change:
        return _Change(
            self.opened + other.opened,
            self.closed + other.closed,
            self.opened_unknown + other.opened_unknown,
            self.closed_unknown + other.closed_unknown,
            EXACT.add(self.amount_opened, other.amount_opened),
            EXACT.add(self.amount_closed, other.amount_closed),
            EXACT.add(self.provisional_opened, other.provisional_opened),
            EXACT.add(self.provisional_closed, other.provisional_closed),
        )

    def minus(self, other: _Change) -> _Change:
        return _Change(
            self.opened - other.opened,
            self.closed - other.closed,
            self.opened_unknown - other.opened_unknown,
            self.closed_unknown - other.closed_unknown,
            EXACT.subtract(self.amount_opened, other.amount_opened),
            EXACT.subtract(self.amount_closed, other.amount_closed),
            EXACT.subtract(self.provisional_opened, other.provisional_opened),
            EXACT.subtract(self.provisional_closed, other.provisional_closed),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.opened or self.closed or self.amount_opened or self.amount_closed
            or self.provisional_opened or self.provisional_closed
        )  # fmt: skip

    @property
    def negative(self) -> bool:
        counts = (self.opened, self.closed)
        amounts = (self.amount_opened, self.amount_closed, self.provisional_opened,
                   self.provisional_closed)  # fmt: skip
        return min(counts) < 0 or min(amounts) < 0

    @property
    def in_force(self) -> PartialSum:
        """What opened less what closed: invoices, those without an amount, their sum and its
        provisional part."""
        return PartialSum(
            self.opened - self.closed,
            self.opened_unknown - self.closed_unknown,
            EXACT.subtract(self.amount_opened, self.amount_closed),
            EXACT.subtract(self.provisional_opened, self.provisional_closed),
        )


BalanceKey = tuple[str, str, int, int]  # organization, currency ("" unknown), due day, day
CollectionKey = tuple[str, str, int]  # organization, currency, day


class _Changes:
    def __init__(self) -> None:
        self.balances: dict[BalanceKey, _Change] = {}
        self.collections: dict[CollectionKey, _Change] = {}

    def version(self, row: Mapping[Any, Any], sign: int) -> None:
        """A state row added (+1) or taken away (-1)."""
        if row["status"] not in OPEN:
            return
        base = (row["organization_id"], row["currency"] or "", due_day_number(row["due_date"]))
        amount, provisional = row["balance_amount"], row["balance_provisional"]
        opened_on = (*base, utc_day_number(row["valid_from"]))
        self.balances.setdefault(opened_on, _Change()).add(sign, False, amount, provisional)
        if row["valid_to"] is not None:
            closed_on = (*base, utc_day_number(row["valid_to"]))
            self.balances.setdefault(closed_on, _Change()).add(sign, True, amount, provisional)

    def totals(self) -> dict[tuple[str, str, int], _Change]:
        totals: dict[tuple[str, str, int], _Change] = {}
        for (organization, currency, due_day, _day), change in self.balances.items():
            key = (organization, currency, due_day)
            totals[key] = totals.get(key, _Change()).merged(change)
        return totals

    def rows(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The rows of every table, when they held nothing before."""
        found = []
        for table, key_names, changes in (
            (report_open_balance_changes, _BALANCE_KEYS, self.balances),
            (report_open_balance_totals, _TOTAL_KEYS, self.totals()),
            (report_daily_collections, _COLLECTION_KEYS, self.collections),
        ):
            rows = [
                {**dict(zip(key_names, key, strict=True)), **_row_of(table, change)}
                for key, change in sorted(changes.items())
                if not change.empty
            ]
            found.append((table, rows))
        return found

    def collection(self, row: Mapping[Any, Any], sign: int) -> None:
        key = (row["organization_id"], row["currency"] or "", utc_day_number(row["collected_at"]))
        self.collections.setdefault(key, _Change()).add(
            sign, False, row["amount"], row["provisional"]
        )


async def record_changes(
    connection: AsyncConnection,
    whole: Sequence[Any],
    advanced: Sequence[Any],
    version_rows: Any,
    collection_rows: Any,
) -> None:
    """Add to the aggregates what writing these projected invoices changes; call it before
    they are written, in the same transaction.

    ``whole``: invoices re-projected whole, replacing every row of their invoice numbers in
    every organization; ``advanced``: invoices folded onto their snapshots, replacing their
    state row from ``history_from`` and their collections after ``collections_kept``.
    ``version_rows`` and ``collection_rows`` make the rows the write path inserts.
    """
    changes = _Changes()
    for row in await _replaced_versions(connection, whole, advanced):
        changes.version(row, -1)
    for row in await _replaced_collections(connection, whole, advanced):
        changes.collection(row, -1)
    for item in (*whole, *advanced):
        for row in version_rows(item):
            changes.version(row, +1)
        for row in collection_rows(item):
            changes.collection(row, +1)
    await _apply(connection, changes)


async def _replaced_versions(
    connection: AsyncConnection, whole: Sequence[Any], advanced: Sequence[Any]
) -> list[Mapping[Any, Any]]:
    rows: list[Mapping[Any, Any]] = []
    columns = invoice_versions.c
    keys = await _keys_numbered(connection, sorted({item.state.invoice_number for item in whole}))
    identity = tuple_(columns.organization_id, columns.invoice_number)
    for chunk in _chunks(keys):
        result = await connection.execute(select(invoice_versions).where(identity.in_(chunk)))
        rows += [row._mapping for row in result]
    starts = [
        (item.state.organization_id, item.state.invoice_number, item.history_from)
        for item in advanced
    ]
    identity = tuple_(columns.organization_id, columns.invoice_number, columns.valid_from)
    for chunk in _chunks(starts):
        result = await connection.execute(select(invoice_versions).where(identity.in_(chunk)))
        rows += [row._mapping for row in result]
    return rows


async def _replaced_collections(
    connection: AsyncConnection, whole: Sequence[Any], advanced: Sequence[Any]
) -> list[Mapping[Any, Any]]:
    rows: list[Mapping[Any, Any]] = []
    columns = invoice_collections.c
    keys = await _keys_numbered(connection, sorted({item.state.invoice_number for item in whole}))
    identity = tuple_(columns.organization_id, columns.invoice_number)
    for chunk in _chunks(keys):
        result = await connection.execute(select(invoice_collections).where(identity.in_(chunk)))
        rows += [row._mapping for row in result]
    stale = [
        (item.state.organization_id, item.state.invoice_number, sequence)
        for item in advanced
        for sequence in range(item.collections_kept + 1, item.collections_before + 1)
    ]
    identity = tuple_(columns.organization_id, columns.invoice_number, columns.sequence)
    for chunk in _chunks(stale):
        result = await connection.execute(select(invoice_collections).where(identity.in_(chunk)))
        rows += [row._mapping for row in result]
    return rows


async def _keys_numbered(
    connection: AsyncConnection, numbers: Sequence[str]
) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for chunk in _chunks(numbers):
        result = await connection.execute(
            select(invoices.c.organization_id, invoices.c.invoice_number).where(
                invoices.c.invoice_number.in_(chunk)
            )
        )
        keys += [(row.organization_id, row.invoice_number) for row in result]
    return keys


async def _apply(connection: AsyncConnection, changes: _Changes) -> None:
    await _add(connection, report_open_balance_changes, _BALANCE_KEYS, changes.balances)
    await _add(connection, report_open_balance_totals, _TOTAL_KEYS, changes.totals())
    await _add(connection, report_daily_collections, _COLLECTION_KEYS, changes.collections)


_BALANCE_KEYS = ("organization_id", "currency", "due_day", "day")
_TOTAL_KEYS = ("organization_id", "currency", "due_day")
_COLLECTION_KEYS = ("organization_id", "currency", "day")


async def _add(
    connection: AsyncConnection,
    table: Any,
    key_names: Sequence[str],
    changes: Mapping[Any, _Change],
) -> None:
    """Add ``changes`` to the rows of ``table`` (read, added up here exactly, written back);
    a row that comes to nothing is deleted, so the table holds only days with content."""
    changed = sorted(key for key, change in changes.items() if not change.empty)
    identity = tuple_(*(table.c[name] for name in key_names))
    for chunk in _chunks(changed):
        stored = {
            tuple(row[: len(key_names)]): _stored_change(table, row._mapping)
            for row in await connection.execute(select(table).where(identity.in_(chunk)))
        }
        if stored:
            await connection.execute(delete(table).where(identity.in_(list(stored))))
        rows = []
        for key in chunk:
            total = stored.get(key, _Change()).merged(changes[key])
            if total.empty:
                continue
            if total.negative:
                raise ValueError(f"report aggregate {table.name} would go negative at {key}")
            rows.append({**dict(zip(key_names, key, strict=True)), **_row_of(table, total)})
        if rows:
            await connection.execute(insert(table), rows)


def _row_of(table: Any, change: _Change) -> dict[str, Any]:
    if table is report_daily_collections:
        return {
            "collections": change.opened,
            "without_amount": change.opened_unknown,
            "amount": change.amount_opened,
            "provisional_amount": change.provisional_opened,
        }
    return {
        "opened": change.opened,
        "closed": change.closed,
        "opened_without_balance": change.opened_unknown,
        "closed_without_balance": change.closed_unknown,
        "balance_opened": change.amount_opened,
        "balance_closed": change.amount_closed,
        "provisional_balance_opened": change.provisional_opened,
        "provisional_balance_closed": change.provisional_closed,
    }


def _stored_change(table: Any, row: Mapping[Any, Any]) -> _Change:
    if table is report_daily_collections:
        return _Change(
            row["collections"], 0, row["without_amount"], 0, row["amount"], ZERO,
            row["provisional_amount"], ZERO,
        )  # fmt: skip
    return _Change(
        row["opened"],
        row["closed"],
        row["opened_without_balance"],
        row["closed_without_balance"],
        row["balance_opened"],
        row["balance_closed"],
        row["provisional_balance_opened"],
        row["provisional_balance_closed"],
    )


async def recount(connection: AsyncConnection) -> None:
    """Both aggregates from scratch, from the live state rows and collections (a rebuild's
    swap); the tables must be empty. PostgreSQL adds them up in SQL (a rebuild's whole read
    model); SQLite, whose amounts are text, here."""
    if connection.dialect.name == "postgresql":
        for statement in _RECOUNT_IN_SQL:
            await connection.execute(text(statement))
        return
    changes = _Changes()
    async with connection.stream(_open_versions()) as versions:
        async for row in versions:
            changes.version(row._mapping, +1)
    async with connection.stream(select(invoice_collections)) as collections:
        async for row in collections:
            changes.collection(row._mapping, +1)
    for table, rows in changes.rows():
        for chunk in _chunks(rows):
            await connection.execute(insert(table), list(chunk))


_OPEN_IN_SQL = ", ".join(f"'{status}'" for status in sorted(OPEN))
_DAY_IN_SQL = "(({instant} AT TIME ZONE 'UTC')::date - DATE '0001-01-01' + 1)"  # toordinal()
_PROVISIONAL_BALANCE = "CASE WHEN balance_provisional THEN coalesce(balance_amount, 0) ELSE 0 END"
_RECOUNT_IN_SQL = (
    f"""
    INSERT INTO report_open_balance_changes
        (organization_id, currency, due_day, day, opened, closed, opened_without_balance,
         closed_without_balance, balance_opened, balance_closed, provisional_balance_opened,
         provisional_balance_closed)
    SELECT organization_id, currency, due_day, day, sum(opened), sum(closed), sum(unknown_opened),
           sum(unknown_closed), sum(balance_opened), sum(balance_closed),
           sum(provisional_opened), sum(provisional_closed)
    FROM (
        SELECT organization_id, coalesce(currency, '') AS currency,
               coalesce(due_date - DATE '0001-01-01' + 1, 0) AS due_day,
               {_DAY_IN_SQL.format(instant="valid_from")} AS day,
               1 AS opened, 0 AS closed, (balance_amount IS NULL)::int AS unknown_opened,
               0 AS unknown_closed, coalesce(balance_amount, 0) AS balance_opened,
               0 AS balance_closed, {_PROVISIONAL_BALANCE} AS provisional_opened,
               0 AS provisional_closed
        FROM invoice_versions WHERE status IN ({_OPEN_IN_SQL})
        UNION ALL
        SELECT organization_id, coalesce(currency, ''),
               coalesce(due_date - DATE '0001-01-01' + 1, 0),
               {_DAY_IN_SQL.format(instant="valid_to")},
               0, 1, 0, (balance_amount IS NULL)::int, 0, coalesce(balance_amount, 0),
               0, {_PROVISIONAL_BALANCE}
        FROM invoice_versions WHERE status IN ({_OPEN_IN_SQL}) AND valid_to IS NOT NULL
    ) AS changes
    GROUP BY organization_id, currency, due_day, day
    """,
    """
    INSERT INTO report_open_balance_totals
        (organization_id, currency, due_day, opened, closed, opened_without_balance,
         closed_without_balance, balance_opened, balance_closed, provisional_balance_opened,
         provisional_balance_closed)
    SELECT organization_id, currency, due_day, sum(opened), sum(closed),
           sum(opened_without_balance), sum(closed_without_balance), sum(balance_opened),
           sum(balance_closed), sum(provisional_balance_opened), sum(provisional_balance_closed)
    FROM report_open_balance_changes
    GROUP BY organization_id, currency, due_day
    """,
    f"""
    INSERT INTO report_daily_collections
        (organization_id, currency, day, collections, without_amount, amount, provisional_amount)
    SELECT organization_id, coalesce(currency, ''), {_DAY_IN_SQL.format(instant="collected_at")},
           count(*), count(*) - count(amount), coalesce(sum(amount), 0),
           coalesce(sum(amount) FILTER (WHERE provisional), 0)
    FROM invoice_collections
    GROUP BY 1, 2, 3
    """,
)


def _open_versions() -> Any:
    return select(invoice_versions).where(invoice_versions.c.status.in_(sorted(OPEN)))


# Reading ------------------------------------------------------------------------------------


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
            changes[key] = changes.get(key, _Change()).minus(change)
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
            changes.setdefault(key, _Change()).add(
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
) -> dict[tuple[str, int], _Change]:
    """Per (currency, due day): the rows of ``table`` meeting ``where``, added up."""
    columns = table.c
    if organization_id is not None:
        where = [*where, columns.organization_id == organization_id]
    changes: dict[tuple[str, int], _Change] = {}
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
            changes[(row[0], row[1])] = _Change(
                int(row[2]), int(row[3]), int(row[4]), int(row[5]), *row[6:10]
            )
        return changes
    async with connection.stream(select(table).where(*where)) as result:
        async for row in result:
            key = (row.currency, row.due_day)
            stored = _stored_change(table, row._mapping)
            changes[key] = changes.get(key, _Change()).merged(stored)
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


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    size = KEYS_PER_STATEMENT
    return (items[start : start + size] for start in range(0, len(items), size))
