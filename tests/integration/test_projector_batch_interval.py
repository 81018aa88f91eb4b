"""A running projector woken by a trickle of events waits out its batch interval, so the
events that arrive meanwhile make one batch; stopping ends that wait at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.projections.projector import BATCH_INTERVAL_SECONDS_MAX, InvoiceProjector
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio
# Longer than any wake below, so only a notification (here: the test) starts a catch-up.
POLL_SECONDS = 30.0


def interval_projector(
    engine: AsyncEngine, interval_seconds: float, batches: list[int]
) -> InvoiceProjector:
    return InvoiceProjector(
        event_store_for(engine),
        SqlReadModelStore(engine),
        owner="p1",
        batch_interval_seconds=interval_seconds,
        on_batch=lambda events, _position: batches.append(events),
    )


async def test_events_that_wake_the_projector_within_its_interval_make_one_batch(
    engine: AsyncEngine,
) -> None:
    store, batches = event_store_for(engine), []
    running = interval_projector(engine, BATCH_INTERVAL_SECONDS_MAX, batches)
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(running.run(stop, wake, POLL_SECONDS))
    await asyncio.sleep(0.6)  # caught up with nothing, and its interval has passed
    for number in range(1, 7):
        await store.append([invoice_event(f"INV-{number}", f"k{number}")])
        wake.set()
        await asyncio.sleep(0.01)
    for _ in range(100):
        if await SqlReadModelStore(engine).checkpoint() == 6:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task

    assert await SqlReadModelStore(engine).checkpoint() == 6
    # The first wake is answered at once; the later ones wait for the interval, together
    # (in two intervals if the appends took longer than one, as on a busy machine).
    assert sum(batches) == 6
    assert len(batches) <= 3


async def test_stopping_ends_the_wait_for_the_batch_interval_at_once(engine: AsyncEngine) -> None:
    running = interval_projector(engine, BATCH_INTERVAL_SECONDS_MAX, [])
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(running.run(stop, wake, POLL_SECONDS))
    await asyncio.sleep(0.05)
    wake.set()  # the next catch-up must wait for the interval...
    await asyncio.sleep(0.05)
    stop.set()  # ...but not once the projector is asked to stop

    await asyncio.wait_for(task, timeout=BATCH_INTERVAL_SECONDS_MAX / 2)


async def test_a_batch_interval_beyond_its_bound_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="batch_interval_seconds"):
        interval_projector(engine, BATCH_INTERVAL_SECONDS_MAX + 0.1, [])
