"""Rebuilding the invoice read models from position zero, invisibly to readers.

The rebuild takes the projector's lease (the running projector stands by), fixes a horizon,
reads every event up to it once, in (invoice, version) order a page at a time, folds each
invoice as its events complete into the rebuild tables, then swaps the result into the live
tables with the checkpoint in one transaction. Memory holds one page, whatever the store's size.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable

from service.domain.events import RecordedEvent
from service.projections.projector import LEASE_SECONDS_DEFAULT, project_stream
from service.store.event_store import SqlEventStore
from service.store.read_models import LeaseLost, SqlReadModelStore

EVENTS_PER_PAGE = 10_000


async def rebuild_invoices(
    event_store: SqlEventStore,
    read_models: SqlReadModelStore,
    *,
    on_progress: Callable[[int], None] | None = None,
    events_per_page: int = EVENTS_PER_PAGE,
) -> int:
    """Rebuild; returns the position the rebuilt read model reflects."""
    owner = f"rebuild-{uuid.uuid4()}"
    await read_models.acquire_lease(owner, LEASE_SECONDS_DEFAULT, take_over=True)
    renewed_at = time.monotonic()
    try:
        horizon = await event_store.last_position()
        await read_models.clear_rebuild_tables()
        unfinished: list[RecordedEvent] = []  # the last invoice of a page may go on

        def read_after(key: tuple[str, int] | None) -> asyncio.Task[list[RecordedEvent]]:
            return asyncio.create_task(
                event_store.read_in_stream_order(key, events_per_page, horizon)
            )

        next_page = read_after(None)
        while page := await next_page:
            after = (page[-1].stream_id, page[-1].version)
            next_page = read_after(after)  # the database reads while this process folds
            pending = unfinished + page
            unfinished = [e for e in pending if e.stream_id == after[0]]
            await _write(read_models, pending[: len(pending) - len(unfinished)])
            if on_progress:
                on_progress(len(page))
            if time.monotonic() - renewed_at > LEASE_SECONDS_DEFAULT / 3:
                if not await read_models.acquire_lease(owner, LEASE_SECONDS_DEFAULT):
                    raise LeaseLost("another rebuild took the projection over")
                renewed_at = time.monotonic()
        await _write(read_models, unfinished)
        await read_models.swap_in_rebuild(owner=owner, to_position=horizon)
        return horizon
    finally:
        await read_models.release_lease(owner)


async def _write(read_models: SqlReadModelStore, events: list[RecordedEvent]) -> None:
    """Fold and write invoices whose events are all here (``events`` is in stream order)."""
    projected = [
        invoice
        for stream_id, stream in itertools.groupby(events, key=lambda e: e.stream_id)
        for invoice in project_stream(stream_id, list(stream))
    ]
    await read_models.write_rebuild_batch(projected)
