"""Adding a batch's changes to a table of sums (the report aggregates, the status totals) in
SQL, without reading its rows back.

A change names a key (the table's primary key) and, for every other column, a count or an
exact amount to add, of either sign. A row that comes to nothing is deleted, so a table holds
only keys with content; a row that would fall below zero is an error (the sums would no longer
be what the read rows add up to), raised before the transaction commits.

On PostgreSQL one statement per table adds every change: the changes go as one array per
column, ``INSERT … SELECT FROM unnest(…) ON CONFLICT (key) DO UPDATE SET x = t.x +
excluded.x``, whose ``RETURNING`` names the rows that came to nothing or below zero (usually
none). SQLite has no exact decimal arithmetic (its + on the stored text is floating point),
so there amounts are added by ``ledger_amount_sum`` (column_types.py, registered on every
connection by database.py): changes that only add are upserted; the others update rows that
must exist and stay at or above zero, and the rows they bring to nothing are deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.column_types import ExactAmount, sqlite_amount_text
from service.store.views.keyed_rows import array_type, delete_keyed

Change = Mapping[str, Any]  # every column of the table: the key's values, the figures to add
_ZERO_AMOUNT = "zero_amount_"  # the parameter holding zero as SQLite stores it


class SumBelowZero(ValueError):
    """A change would take a stored count or amount below zero."""


async def add_changes(
    connection: AsyncConnection, table: Table, key_names: Sequence[str], changes: Sequence[Change]
) -> None:
    """Add ``changes`` (at most one per key) to the rows of ``table``; see the module."""
    figures = _figure_names(table, key_names)
    changes = [change for change in changes if any(change[name] for name in figures)]
    if not changes:
        return
    if connection.dialect.name == "postgresql":
        await _add_on_postgresql(connection, table, key_names, changes)
    else:
        await _add_on_sqlite(connection, table, key_names, changes)


async def _add_on_postgresql(
    connection: AsyncConnection, table: Table, key_names: Sequence[str], changes: Sequence[Change]
) -> None:
    quote = connection.dialect.identifier_preparer.quote
    names = [column.name for column in table.c]
    figures = _figure_names(table, key_names)
    listed, keys = ", ".join(map(quote, names)), ", ".join(map(quote, key_names))
    arrays = ", ".join(f"CAST(:{name} AS {array_type(connection, table, name)})" for name in names)
    added = ", ".join(
        f"{quote(name)} = {quote(table.name)}.{quote(name)} + excluded.{quote(name)}"
        for name in figures
    )
    nothing = " AND ".join(f"{quote(name)} = 0" for name in figures)
    below = " OR ".join(f"{quote(name)} < 0" for name in figures)
    statement = text(
        f"WITH added AS (INSERT INTO {quote(table.name)} ({listed})"
        f" SELECT * FROM unnest({arrays}) AS changed({listed})"
        f" ON CONFLICT ({keys}) DO UPDATE SET {added}"
        f" RETURNING {keys}, ({nothing}) AS nothing, ({below}) AS below_zero)"
        f" SELECT {keys}, below_zero FROM added WHERE nothing OR below_zero"
    )
    ordered = sorted(changes, key=lambda change: tuple(change[name] for name in key_names))
    columns = {name: [change[name] for change in ordered] for name in names}
    flagged = (await connection.execute(statement, columns)).all()
    if any(row.below_zero for row in flagged):
        below_zero = [tuple(row[: len(key_names)]) for row in flagged if row.below_zero]
        raise SumBelowZero(f"{table.name} would fall below zero at {below_zero}")
    emptied = [tuple(row[: len(key_names)]) for row in flagged]
    await delete_keyed(connection, table, key_names, emptied)


async def _add_on_sqlite(
    connection: AsyncConnection, table: Table, key_names: Sequence[str], changes: Sequence[Change]
) -> None:
    figures = _figure_names(table, key_names)
    amounts = {name for name in figures if isinstance(table.c[name].type, ExactAmount)}
    growing = [change for change in changes if all(change[name] >= 0 for name in figures)]
    shrinking = [change for change in changes if any(change[name] < 0 for name in figures)]
    zero = {_ZERO_AMOUNT: sqlite_amount_text(Decimal(0))}
    if growing:
        added = ", ".join(
            f"{name} = ledger_amount_sum({name}, excluded.{name})"
            if name in amounts
            else f"{name} = {name} + excluded.{name}"
            for name in figures
        )
        names = [column.name for column in table.c]
        upsert = text(
            f"INSERT INTO {table.name} ({', '.join(names)})"
            f" VALUES ({', '.join(f':{name}' for name in names)})"
            f" ON CONFLICT ({', '.join(key_names)}) DO UPDATE SET {added}"
        )
        await connection.execute(upsert, [_stored_form(change, amounts) for change in growing])
    if not shrinking:
        return
    keyed = " AND ".join(f"{name} = :{name}" for name in key_names)
    added = ", ".join(
        f"{name} = ledger_amount_sum({name}, :{name})"
        if name in amounts
        else f"{name} = {name} + :{name}"
        for name in figures
    )
    # Only a row that exists and stays at or above zero is updated: any other is an error.
    at_or_above_zero = " AND ".join(
        f"ledger_amount_sum({name}, :{name}) >= :{_ZERO_AMOUNT}"
        if name in amounts
        else f"{name} + :{name} >= 0"
        for name in figures
    )
    update = text(f"UPDATE {table.name} SET {added} WHERE {keyed} AND {at_or_above_zero}")
    bound = [
        {**change, **{name: str(change[name]) for name in amounts}, **zero} for change in shrinking
    ]
    updated = await connection.execute(update, bound)
    if updated.rowcount != len(shrinking):
        raise SumBelowZero(
            f"{table.name} would fall below zero: a change takes more than a row holds,"
            " or from a row that is not there"
        )
    nothing = " AND ".join(
        f"{name} = :{_ZERO_AMOUNT}" if name in amounts else f"{name} = 0" for name in figures
    )
    delete = text(f"DELETE FROM {table.name} WHERE {keyed} AND {nothing}")
    await connection.execute(
        delete, [{**_key_of(change, key_names), **zero} for change in shrinking]
    )


def _figure_names(table: Table, key_names: Sequence[str]) -> list[str]:
    return [column.name for column in table.c if column.name not in key_names]


def _stored_form(change: Change, amounts: set[str]) -> dict[str, Any]:
    return {**change, **{name: sqlite_amount_text(change[name]) for name in amounts}}


def _key_of(change: Change, key_names: Sequence[str]) -> dict[str, Any]:
    return {name: change[name] for name in key_names}
