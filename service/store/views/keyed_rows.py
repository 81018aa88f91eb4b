"""Statements over many rows at once, bounded per statement: reading and deleting rows by
their keys, and emptying tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

# Keeps each statement's parameters well under SQLite's limit of 32,766.
KEYS_PER_STATEMENT_MAX = 5_000


def chunks(items: Sequence[Any], size: int = KEYS_PER_STATEMENT_MAX) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def empty(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    if connection.dialect.name == "postgresql":
        # Inside the caller's transaction: readers wait for its commit, then see the new rows.
        names = ", ".join(connection.dialect.identifier_preparer.quote(t.name) for t in tables)
        await connection.execute(text(f"TRUNCATE {names}"))
        return
    for table in tables:
        await connection.execute(delete(table))


async def rows_keyed(
    connection: AsyncConnection,
    table: Table,
    key_columns: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
    columns: Sequence[ColumnElement[Any]] = (),
) -> list[Any]:
    """The rows (``columns``, or all) whose primary-key prefix ``key_columns`` is one of
    ``keys``; on PostgreSQL joined with ``unnest``, as ``delete_keyed`` deletes them."""
    if not keys:
        return []
    selected = list(columns) or list(table.c)
    if connection.dialect.name != "postgresql":
        identity = tuple_(*(table.c[name] for name in key_columns))
        found: list[Any] = []
        for chunk in chunks(keys):
            found += (await connection.execute(select(*selected).where(identity.in_(chunk)))).all()
        return found
    quote = connection.dialect.identifier_preparer.quote
    arrays, matched, names = _unnested(connection, table, key_columns)
    listed = ", ".join(f"{quote(table.name)}.{quote(column.name)}" for column in selected)
    keyed_select = text(
        f"SELECT {listed} FROM {quote(table.name)} JOIN unnest({arrays}) AS keyed({names})"
        f" ON {matched}"
    ).columns(*selected)
    return list((await connection.execute(keyed_select, _key_arrays(key_columns, keys))).all())


async def delete_keyed(
    connection: AsyncConnection,
    table: Table,
    key_columns: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
) -> None:
    """Delete the rows whose primary-key prefix ``key_columns`` is one of ``keys``.

    On PostgreSQL the keys go as one array per column, joined with ``unnest``: an index
    lookup per key in one statement. A row-value ``IN`` list of a thousand keys is planned as a
    filter over a scan of the whole table, whose cost grows with the read model.
    """
    if not keys:
        return
    if connection.dialect.name != "postgresql":
        identity = tuple_(*(table.c[name] for name in key_columns))
        for chunk in chunks(keys):
            await connection.execute(delete(table).where(identity.in_(chunk)))
        return
    quote = connection.dialect.identifier_preparer.quote
    arrays, matched, names = _unnested(connection, table, key_columns)
    keyed_delete = text(
        f"DELETE FROM {quote(table.name)} USING unnest({arrays}) AS keyed({names}) WHERE {matched}"
    )
    await connection.execute(keyed_delete, _key_arrays(key_columns, keys))


def _unnested(
    connection: AsyncConnection, table: Table, key_columns: Sequence[str]
) -> tuple[str, str, str]:
    """The ``unnest`` arguments, the join condition and the key names, quoted."""
    quote = connection.dialect.identifier_preparer.quote
    arrays = ", ".join(
        f"CAST(:{name} AS {array_type(connection, table, name)})" for name in key_columns
    )
    matched = " AND ".join(
        f"{quote(table.name)}.{quote(name)} = keyed.{quote(name)}" for name in key_columns
    )
    return arrays, matched, ", ".join(quote(name) for name in key_columns)


def array_type(connection: AsyncConnection, table: Table, name: str) -> str:
    """The PostgreSQL array type that binds column ``name`` of ``table`` for ``unnest``."""
    return f"{table.c[name].type.compile(dialect=connection.dialect)}[]"


def _key_arrays(
    key_columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> dict[str, list[Any]]:
    return {name: [key[index] for key in keys] for index, name in enumerate(key_columns)}
