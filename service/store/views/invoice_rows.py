"""The invoice rows: ``invoices`` (each invoice's current state), ``invoice_versions`` (every
state it was in, valid from one instant to the next) and ``invoice_collections`` (the money
collected on it), and their ``rebuild_*`` twins, which a rebuild fills out of readers' sight.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, Table, TypeDecorator, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.schema import (
    invoice_collections,
    invoice_versions,
    invoices,
    rebuild_invoice_collections,
    rebuild_invoice_versions,
    rebuild_invoices,
)
from service.store.views.changes import (
    INVOICE_KEY,
    ProjectedInvoice,
    ViewChanges,
    collection_rows,
    invoice_row,
    version_rows,
)
from service.store.views.keyed_rows import array_type, delete_keyed, empty

# How long indexing the rebuild tables may take (PostgreSQL), all of them.
SWAP_INDEX_SECONDS_MAX = 60 * 60.0


@dataclass(frozen=True, slots=True)
class InvoiceTables:
    invoices: Table
    versions: Table
    collections: Table

    def all(self) -> tuple[Table, Table, Table]:
        return self.invoices, self.versions, self.collections


LIVE_TABLES = InvoiceTables(invoices, invoice_versions, invoice_collections)
REBUILD_TABLES = InvoiceTables(
    rebuild_invoices, rebuild_invoice_versions, rebuild_invoice_collections
)
TABLES = LIVE_TABLES.all()


async def apply(connection: AsyncConnection, changes: ViewChanges) -> None:
    """Replace the rows of the batch's invoices: every row of the ``whole`` ones' invoice
    numbers; the invoice row, the state rows from ``history_from`` on and the collections
    after ``collections_kept`` of the ``advanced`` ones (whose identity is unchanged: a fact
    that would regroup a stream is folded with the whole stream)."""
    if changes.whole:
        numbers = sorted({item.state.invoice_number for item in changes.whole})
        await connection.execute(delete(invoices).where(invoices.c.invoice_number.in_(numbers)))
        keys = changes.removed_whole_keys
        for table in (invoice_versions, invoice_collections):
            await delete_keyed(connection, table, INVOICE_KEY, keys)
    if changes.advanced:
        advanced = changes.advanced
        await delete_keyed(connection, invoices, INVOICE_KEY, [item.key for item in advanced])
        # Folding onto a snapshot only adds later states, so the one row at or after
        # history_from is the row of the snapshot's last state.
        versions_from = [(*item.key, item.history_from) for item in advanced]
        await delete_keyed(
            connection, invoice_versions, (*INVOICE_KEY, "valid_from"), versions_from
        )
        stale = [
            (*item.key, sequence)
            for item in advanced
            for sequence in range(item.collections_kept + 1, item.collections_before + 1)
        ]
        await delete_keyed(connection, invoice_collections, (*INVOICE_KEY, "sequence"), stale)
    await _insert_rows(
        connection,
        [
            (invoices, changes.added_invoices()),
            (invoice_versions, changes.added_versions()),
            (invoice_collections, changes.added_collections()),
        ],
    )


async def recount(connection: AsyncConnection) -> None:
    """Make the rebuilt rows live, in the caller's transaction.

    On PostgreSQL the tables are exchanged by renaming (``ledger_rebuild_tables``, migration
    0025): readers wait for the renames, not for a copy of the whole read model into indexed
    tables, and the rebuild tables must have been indexed first (``index_rebuild_tables``).
    SQLite copies the rows over: its read models are small, and renaming there would rewrite
    the schema under other connections.
    """
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT ledger_rebuild_tables('swap')"))
        return
    await empty(connection, LIVE_TABLES.all())
    for live, rebuilt in zip(LIVE_TABLES.all(), REBUILD_TABLES.all(), strict=True):
        await _copy_table(connection, live, rebuilt)
    await empty(connection, REBUILD_TABLES.all())


async def clear_rebuild_tables(connection: AsyncConnection) -> None:
    """Empty the rebuild tables and, on PostgreSQL, leave them only their primary keys: rows
    load faster into tables without indexes, and the indexes are built once at the end."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT ledger_rebuild_tables('unindex')"))
    await empty(connection, REBUILD_TABLES.all())


async def index_rebuild_tables(connection: AsyncConnection) -> None:
    """Give the loaded rebuild tables the live tables' indexes and statistics (PostgreSQL),
    before the swap's transaction, so that readers do not wait while they are built."""
    if connection.dialect.name != "postgresql":
        return
    driver_connection = (await connection.get_raw_connection()).driver_connection
    assert driver_connection is not None
    # Bounded as the copy it replaces: this reads the whole read model, once per index.
    await driver_connection.execute(
        "SELECT ledger_rebuild_tables('index')", timeout=SWAP_INDEX_SECONDS_MAX
    )


async def write_rebuild_batch(
    connection: AsyncConnection, projected: Sequence[ProjectedInvoice]
) -> None:
    """Add rows to the rebuild tables (emptied when the rebuild began).

    On PostgreSQL with COPY: a rebuild writes every row of the read model, and COPY does
    that several times faster than batched INSERTs.
    """
    if connection.dialect.name != "postgresql":
        await insert_invoices(connection, REBUILD_TABLES, projected)
        return
    driver_connection = (await connection.get_raw_connection()).driver_connection
    assert driver_connection is not None
    for table, rows in _rows_by_table(REBUILD_TABLES, projected):
        await driver_connection.copy_records_to_table(
            table.name,
            records=_copy_records(table, rows, connection.dialect),
            columns=[column.name for column in table.columns],
        )


async def insert_invoices(
    connection: AsyncConnection, tables: InvoiceTables, projected: Sequence[ProjectedInvoice]
) -> None:
    await _insert_rows(connection, _rows_by_table(tables, projected))


async def _insert_rows(
    connection: AsyncConnection, rows_by_table: Sequence[tuple[Table, list[dict[str, Any]]]]
) -> None:
    """The rows, one statement per table. On PostgreSQL each column goes as one array,
    ``INSERT … SELECT FROM unnest(…)``: the driver binds a dozen arrays instead of a dozen
    values per row, and the server runs one statement instead of one per row."""
    for table, rows in rows_by_table:
        if not rows:
            continue
        if connection.dialect.name != "postgresql":
            await connection.execute(insert(table), rows)
            continue
        quote = connection.dialect.identifier_preparer.quote
        names = [column.name for column in table.columns]
        listed = ", ".join(quote(name) for name in names)
        arrays = ", ".join(
            f"CAST(:{name} AS {array_type(connection, table, name)})" for name in names
        )
        statement = text(
            f"INSERT INTO {quote(table.name)} ({listed}) SELECT * FROM unnest({arrays})"
        )
        await connection.execute(statement, _bound_columns(table, rows, connection.dialect))


def _rows_by_table(
    tables: InvoiceTables, projected: Sequence[ProjectedInvoice]
) -> list[tuple[Table, list[dict[str, Any]]]]:
    candidates = [
        (tables.invoices, [invoice_row(item) for item in projected]),
        (tables.versions, [row for item in projected for row in version_rows(item)]),
        (tables.collections, [row for item in projected for row in collection_rows(item)]),
    ]
    return [(table, rows) for table, rows in candidates if rows]


async def _copy_table(connection: AsyncConnection, live: Table, rebuilt: Table) -> None:
    """Every rebuilt row into its live table (SQLite)."""
    await connection.execute(insert(live).from_select(list(rebuilt.c), select(rebuilt)))


def _binders(table: Table, dialect: Dialect) -> list[tuple[int, Callable[[Any], Any]]]:
    """Each column's binder where it has one: COPY and the arrays for ``unnest`` bypass
    SQLAlchemy's types, which check amounts and instants, and serialise JSON documents."""
    binders: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(table.columns):
        if column.name == "payments":
            binders.append((index, _payments_document))
        elif isinstance(column.type, TypeDecorator):
            binders.append((index, partial(column.type.process_bind_param, dialect=dialect)))
    return binders


def _payments_document(payments: list[dict[str, Any]]) -> str:
    """The payments as JSON text; most invoices have none, and ``json.dumps`` of no payment
    costs as much as the rest of their row."""
    return json.dumps(payments) if payments else "[]"


def _bound_columns(
    table: Table, rows: list[dict[str, Any]], dialect: Dialect
) -> dict[str, list[Any]]:
    """Rows as one list of values per column, each value bound as its column's type binds it."""
    names = [column.name for column in table.columns]
    columns = {name: [row[name] for row in rows] for name in names}
    for index, bind in _binders(table, dialect):
        values = columns[names[index]]
        # Every binder keeps NULL as NULL.
        columns[names[index]] = [None if value is None else bind(value) for value in values]
    return columns


def _copy_records(
    table: Table, rows: list[dict[str, Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """Rows as COPY records, each value bound as its column's type binds it (``_binders``).

    A row's values are taken in column order by one ``itemgetter`` call, and only the columns
    with a binder are visited a second time: a rebuild makes a record of every row of the read
    model, and a call per value costs as much as the fold."""
    in_column_order = itemgetter(*(column.name for column in table.columns))
    binders = _binders(table, dialect)
    records = []
    for row in rows:
        values = list(in_column_order(row))
        for index, bind in binders:
            value = values[index]
            if value is not None:  # every binder keeps NULL as NULL
                values[index] = bind(value)
        records.append(tuple(values))
    return records
