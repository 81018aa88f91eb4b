"""A projector held up by a slow append waits it out: load never stops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.projections.projector import InvoiceProjector
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import APPEND_LOCK_KEY, StoreBusy
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql]

LOCK_TIMEOUT_MILLISECONDS = 100
HELD_SECONDS = 1.0


@pytest.fixture
async def engine(postgresql_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    yield engine
    await engine.dispose()


async def hold_an_append_open(engine: AsyncEngine, held: asyncio.Event, seconds: float) -> None:
    """What a delivery stuck behind a table lock looks like to a reader: the shared form of
    the append lock, held."""
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": APPEND_LOCK_KEY}
        )
        held.set()
        await asyncio.sleep(seconds)


async def test_a_reader_is_told_the_store_is_busy_not_broken(engine: AsyncEngine) -> None:
    store = event_store_for(engine, horizon_lock_timeout_milliseconds=LOCK_TIMEOUT_MILLISECONDS)
    held = asyncio.Event()
    holder = asyncio.create_task(hold_an_append_open(engine, held, HELD_SECONDS))
    await held.wait()
    with pytest.raises(StoreBusy):
        await store.read_after(0, 10)
    await holder


async def test_an_append_held_up_longer_than_the_lock_timeout_does_not_stop_the_projector(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine, horizon_lock_timeout_milliseconds=LOCK_TIMEOUT_MILLISECONDS)
    await store.append([invoice_event("H-1", "h1")])
    projector = InvoiceProjector(store, SqlReadModelStore(engine), owner="p1")
    held = asyncio.Event()
    holder = asyncio.create_task(hold_an_append_open(engine, held, HELD_SECONDS))
    await held.wait()
    stop, wake = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(projector.run(stop, wake, poll_seconds=0.05))
    await holder
    for _ in range(100):
        if projector.health.position >= 1:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await running
    assert projector.health.error is None
    assert projector.health.position == 1
