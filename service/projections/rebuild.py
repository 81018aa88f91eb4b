"""Rebuilding the invoice read models from position zero, invisibly to readers.

The rebuild takes the projector's lease (the running projector stands by), fixes a horizon,
folds every invoice's events up to it into the rebuild tables, a bounded number of invoices at
a time, then swaps the result into the live tables with the checkpoint in one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from service.projections.projector import LEASE_SECONDS_DEFAULT, project_invoice
from service.store.event_store import SqlEventStore
from service.store.read_models import LeaseLost, SqlReadModelStore

INVOICES_PER_BATCH = 500


async def rebuild_invoices(
    event_store: SqlEventStore,
    read_models: SqlReadModelStore,
    *,
    on_progress: Callable[[int], None] | None = None,
    invoices_per_batch: int = INVOICES_PER_BATCH,
) -> int:
    """Rebuild; returns the position the rebuilt read model reflects."""
    owner = f"rebuild-{uuid.uuid4()}"
    await read_models.acquire_lease(owner, LEASE_SECONDS_DEFAULT, take_over=True)
    renewed_at = time.monotonic()
    try:
        horizon = await event_store.last_position()
        await read_models.clear_rebuild_tables()
        after = ""
        while stream_ids := await event_store.stream_ids(after, invoices_per_batch, horizon):
            streams = await event_store.read_streams(stream_ids, horizon)
            await read_models.write_rebuild_batch(
                [project_invoice(number, streams[number]) for number in stream_ids]
            )
            if on_progress:
                on_progress(sum(len(events) for events in streams.values()))
            after = stream_ids[-1]
            if time.monotonic() - renewed_at > LEASE_SECONDS_DEFAULT / 3:
                if not await read_models.acquire_lease(owner, LEASE_SECONDS_DEFAULT):
                    raise LeaseLost("another rebuild took the projection over")
                renewed_at = time.monotonic()
        await read_models.swap_in_rebuild(owner=owner, to_position=horizon)
        return horizon
    finally:
        await read_models.release_lease(owner)
