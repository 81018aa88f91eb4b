"""``invoice_fold_snapshots``: each stream's fold as of the checkpoint it was written with,
so that the projector folds a long-lived invoice's new facts onto it instead of reading the
whole stream again."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.schema import invoice_fold_snapshots
from service.store.views.changes import ViewChanges
from service.store.views.keyed_rows import array_type, chunks, empty

TABLES = (invoice_fold_snapshots,)


async def apply(connection: AsyncConnection, changes: ViewChanges) -> None:
    """Each stream's snapshot as of ``to_position``; a stream without one loses its old one."""
    snapshots = changes.fold_snapshots
    columns = invoice_fold_snapshots.c
    gone = sorted(stream for stream, snapshot in snapshots.items() if snapshot is None)
    for chunk in chunks(gone):
        await connection.execute(delete(invoice_fold_snapshots).where(columns.stream_id.in_(chunk)))
    rows = [
        {"stream_id": stream, "position": changes.to_position, "snapshot": snapshot}
        for stream, snapshot in sorted(snapshots.items())
        if snapshot is not None
    ]
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        await _upsert_unnested(connection, rows)
        return
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    upsert = dialect_insert(invoice_fold_snapshots)
    await connection.execute(
        upsert.on_conflict_do_update(
            index_elements=[columns.stream_id],
            set_={"position": upsert.excluded.position, "snapshot": upsert.excluded.snapshot},
        ),
        rows,
    )


async def _upsert_unnested(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """One statement for the batch, each column bound as one array (see invoice_rows.py)."""
    table = invoice_fold_snapshots
    arrays = ", ".join(
        f"CAST(:{name} AS {array_type(connection, table, name)})"
        for name in ("stream_id", "position", "snapshot")
    )
    upsert = text(
        f"INSERT INTO {table.name} (stream_id, position, snapshot) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (stream_id) DO UPDATE"
        " SET position = excluded.position, snapshot = excluded.snapshot"
    )
    await connection.execute(
        upsert,
        {
            "stream_id": [row["stream_id"] for row in rows],
            "position": [row["position"] for row in rows],
            # Serialised here as SQLAlchemy's JSON type would: arrays bypass it.
            "snapshot": [json.dumps(row["snapshot"]) for row in rows],
        },
    )


async def recount(connection: AsyncConnection) -> None:
    """After a rebuild: none. Snapshots describe streams as of older positions: the projector
    folds each stream whole the next time it is touched, and keeps a snapshot from then on."""
    await empty(connection, TABLES)


async def stored_snapshots(
    connection: AsyncConnection, stream_ids: Sequence[str], up_to_position: int
) -> dict[str, Mapping[str, Any]]:
    """The stored snapshots of these streams, where they reflect at most ``up_to_position``."""
    columns = invoice_fold_snapshots.c
    found: dict[str, Mapping[str, Any]] = {}
    for chunk in chunks(sorted(stream_ids)):
        rows = await connection.execute(
            select(columns.stream_id, columns.snapshot).where(
                columns.stream_id.in_(chunk), columns.position <= up_to_position
            )
        )
        found.update({row.stream_id: row.snapshot for row in rows})
    return found
