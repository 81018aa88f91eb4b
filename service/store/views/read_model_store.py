"""Writing the read models: the projector's batches, each in one transaction with the
checkpoint, and a rebuild's rows, swapped in at once. The views written are the registered
ones (registry.py); leases and checkpoints are leases.py's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.store.errors import unavailability_as_store_error
from service.store.views import invoice_rows
from service.store.views.changes import ProjectedInvoice, read_changes
from service.store.views.fold_snapshots import stored_snapshots
from service.store.views.leases import INVOICES_PROJECTION, SqlLeases
from service.store.views.registry import VIEWS


class SqlReadModelStore(SqlLeases):
    async def apply(
        self,
        projected: Sequence[ProjectedInvoice],
        *,
        owner: str,
        from_position: int,
        to_position: int,
        name: str = INVOICES_PROJECTION,
        fold_snapshots: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Write what these invoices change in every view and move the checkpoint, in one
        transaction.

        ``fold_snapshots``: each projected stream's new snapshot (None: the stream has none),
        as of ``to_position``.

        The checkpoint moves only from ``from_position`` and only for the lease holder, so a
        projector that lost its lease, or raced another, writes nothing.
        """
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await self.move_checkpoint(
                connection,
                name=name,
                owner=owner,
                from_position=from_position,
                to_position=to_position,
            )
            changes = await read_changes(connection, projected, to_position, fold_snapshots or {})
            for view in VIEWS:
                await view.apply(connection, changes)

    async def fold_snapshots(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, Mapping[str, Any]]:
        """The stored fold snapshots of these streams, where they reflect at most
        ``up_to_position`` (the checkpoint they were written with)."""
        if not stream_ids:
            return {}
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return await stored_snapshots(connection, stream_ids, up_to_position)

    async def write_rebuild_batch(self, projected: Sequence[ProjectedInvoice]) -> None:
        """Add rows to the rebuild tables (emptied when the rebuild began)."""
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await invoice_rows.write_rebuild_batch(connection, projected)

    async def clear_rebuild_tables(self) -> None:
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await invoice_rows.clear_rebuild_tables(connection)

    async def swap_in_rebuild(
        self, *, owner: str, to_position: int, name: str = INVOICES_PROJECTION
    ) -> None:
        """Make the rebuilt rows live, recount every other view from them and set the
        checkpoint, atomically for every reader.

        The rebuilt rows are indexed first, in a transaction of their own that readers do not
        wait for; the swap's transaction then only exchanges tables and recounts."""
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await invoice_rows.index_rebuild_tables(connection)
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await self.move_checkpoint(connection, name=name, owner=owner, to_position=to_position)
            for view in VIEWS:
                await view.recount(connection)
