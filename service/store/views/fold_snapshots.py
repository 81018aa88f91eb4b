"""``invoice_fold_snapshots``: each stream's fold as of the checkpoint it was written with,
so that the projector folds a long-lived invoice's new facts onto it instead of reading the
whole stream again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.schema import invoice_fold_snapshots
from service.store.views.changes import ViewChanges
from service.store.views.keyed_rows import chunks, empty

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
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    upsert = dialect_insert(invoice_fold_snapshots)
    await connection.execute(
        upsert.on_conflict_do_update(
            index_elements=[columns.stream_id],
            set_={"position": upsert.excluded.position, "snapshot": upsert.excluded.snapshot},
        ),
        rows,
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
