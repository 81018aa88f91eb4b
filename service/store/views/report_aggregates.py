"""Day-bucketed report aggregates, kept by the projector beside the read rows (a view: ``apply``
and ``recount``; the figures in report_change.py, the reading in report_reads.py).

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
a collections report whose days begin in another zone reads from them the UTC days its periods
cover whole, and the collections themselves for the days their ends split (on SQLite, all).

Amounts opened and closed are kept apart, each a sum of non-negative amounts, so both columns
stay exact non-negative amounts on either engine (SQLite keeps them as text and never sums
them: sums are made here, in Python, as ``service.store.exact_sums`` does). Unknown amounts are
counted, never summed as zero. Beside each sum, its provisional part (the amounts inferred
from notifications alone, of the state rows whose balance and the collections whose amount
is provisional) is kept the same way.

The projector records the change of every batch in the transaction that writes its read rows
and checkpoint (``apply``): from the rows it replaces (read once for every view, changes.py)
and the rows it writes, the change of every key is made here, in Python, and added to the
tables in SQL (summed_changes.py), without reading their rows back. A rebuild recounts
them from the rows it swapped in (``recount``), so rebuilt and incremental aggregates are the
same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.schema import (
    invoice_collections,
    invoice_versions,
    report_daily_collections,
    report_open_balance_changes,
    report_open_balance_totals,
)
from service.store.views.changes import ViewChanges
from service.store.views.keyed_rows import chunks, empty
from service.store.views.report_change import (
    BALANCE_KEYS,
    COLLECTION_KEYS,
    OPEN,
    TOTAL_KEYS,
    BalanceKey,
    CollectionKey,
    ReportChange,
    due_day_number,
    row_of,
    utc_day_number,
)
from service.store.views.summed_changes import add_changes

KEYS_PER_STATEMENT = 500
TABLES = (report_open_balance_changes, report_open_balance_totals, report_daily_collections)


class _Changes:
    def __init__(self) -> None:
        self.balances: dict[BalanceKey, ReportChange] = {}
        self.collections: dict[CollectionKey, ReportChange] = {}

    def version(self, row: Mapping[Any, Any], sign: int) -> None:
        """A state row added (+1) or taken away (-1)."""
        if row["status"] not in OPEN:
            return
        base = (row["organization_id"], row["currency"] or "", due_day_number(row["due_date"]))
        amount, provisional = row["balance_amount"], row["balance_provisional"]
        opened_on = (*base, utc_day_number(row["valid_from"]))
        self.balances.setdefault(opened_on, ReportChange()).add(sign, False, amount, provisional)
        if row["valid_to"] is not None:
            closed_on = (*base, utc_day_number(row["valid_to"]))
            self.balances.setdefault(closed_on, ReportChange()).add(sign, True, amount, provisional)

    def totals(self) -> dict[tuple[str, str, int], ReportChange]:
        totals: dict[tuple[str, str, int], ReportChange] = {}
        for (organization, currency, due_day, _day), change in self.balances.items():
            key = (organization, currency, due_day)
            totals[key] = totals.get(key, ReportChange()).merged(change)
        return totals

    def rows(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The rows of every table, when they held nothing before."""
        found = []
        for table, key_names, changes in (
            (report_open_balance_changes, BALANCE_KEYS, self.balances),
            (report_open_balance_totals, TOTAL_KEYS, self.totals()),
            (report_daily_collections, COLLECTION_KEYS, self.collections),
        ):
            rows = [
                {**dict(zip(key_names, key, strict=True)), **row_of(table, change)}
                for key, change in sorted(changes.items())
                if not change.empty
            ]
            found.append((table, rows))
        return found

    def collection(self, row: Mapping[Any, Any], sign: int) -> None:
        key = (row["organization_id"], row["currency"] or "", utc_day_number(row["collected_at"]))
        self.collections.setdefault(key, ReportChange()).add(
            sign, False, row["amount"], row["provisional"]
        )


async def apply(connection: AsyncConnection, changes: ViewChanges) -> None:
    """Add to the aggregates what the batch changes: its replaced state rows and collections
    taken away, the rows it writes added."""
    figures = _Changes()
    for row in changes.removed_versions:
        figures.version(row, -1)
    for row in changes.removed_collections:
        figures.collection(row, -1)
    for row in changes.added_versions():
        figures.version(row, +1)
    for row in changes.added_collections():
        figures.collection(row, +1)
    await _add(connection, report_open_balance_changes, BALANCE_KEYS, figures.balances)
    await _add(connection, report_open_balance_totals, TOTAL_KEYS, figures.totals())
    await _add(connection, report_daily_collections, COLLECTION_KEYS, figures.collections)


async def _add(
    connection: AsyncConnection,
    table: Any,
    key_names: Sequence[str],
    changes: Mapping[Any, ReportChange],
) -> None:
    """Add ``changes`` to the rows of ``table`` in SQL (summed_changes.py): no row is read
    back; a row that comes to nothing is deleted, so the table holds only days with content."""
    await add_changes(
        connection,
        table,
        key_names,
        [
            {**dict(zip(key_names, key, strict=True)), **row_of(table, change)}
            for key, change in changes.items()
        ],
    )


async def recount(connection: AsyncConnection) -> None:
    """Both aggregates from scratch, from the live state rows and collections (a rebuild's
    swap). PostgreSQL adds them up in SQL (a rebuild's whole read model); SQLite, whose
    amounts are text, here."""
    await empty(connection, TABLES)
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
        for chunk in chunks(rows, KEYS_PER_STATEMENT):
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
