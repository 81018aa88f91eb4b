from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.invoice import fold
from service.domain.status import InvoiceStatus
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.store.events.for_engine import event_store_for
from service.store.views.leases import LeaseLost
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event
from tests.support.histories import random_history
from tests.support.projections import projector, read_model

pytestmark = pytest.mark.anyio
E_SENT, E_PAID = "InvoiceSent", "InvoicePaid"


async def test_projected_rows_are_the_fold_of_each_invoice(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    await store.append(
        [
            invoice_event(
                "A",
                "a1",
                balanceAmount="100.00",
                totalAmount="100.00",
                currency="USD",
                dueDate="2026-03-31",
            )
        ]
    )
    await store.append([invoice_event("A", "a2", type=E_PAID, seconds=60, balanceAmount="0.00")])
    assert await projector(engine).catch_up() == 2
    [row] = (await read_model(engine))["invoices"]
    expected = fold("A", await store.read_stream("A"))
    assert row["status"] == InvoiceStatus.PAID == expected.status
    assert row["balance_amount"] == Decimal("0")
    # A paid notification does not say what was paid: the total stated before stands, and the
    # money is the balance it cleared, provisional until Cybersource is asked.
    assert row["total_amount"] == Decimal("100") == expected.total_amount
    assert [(c.amount, c.provisional) for c in expected.collections] == [(Decimal("100.00"), True)]
    assert row["last_position"] == 2
    assert await SqlReadModelStore(engine).checkpoint() == 2


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    invoices=st.integers(1, 15),
    events=st.integers(1, 60),
    delivered_per_projection=st.integers(1, 20),
    batch_size=st.integers(1, 10),
    page=st.integers(1, 12),
)
async def test_incremental_projection_equals_a_rebuild_for_random_histories(
    engine: AsyncEngine,
    seed: int,
    invoices: int,
    events: int,
    delivered_per_projection: int,
    batch_size: int,
    page: int,
) -> None:
    # Examples share the database, each under a prefix of its own; a rebuild recomputes the
    # whole read model, so equality covers every example so far.
    store = event_store_for(engine)
    history = random_history(seed, invoices, events, prefix=f"{uuid.uuid4().hex[:6]}-")
    for start in range(0, len(history), delivered_per_projection):
        for event in history[start : start + delivered_per_projection]:
            await store.append([event])
        # projects as deliveries arrive, in small batches
        await projector(engine, batch_size=batch_size).catch_up()
    incremental = await read_model(engine)
    position = await rebuild_invoices(store, SqlReadModelStore(engine), events_per_page=page)
    assert await read_model(engine) == incremental
    assert position == await SqlReadModelStore(engine).checkpoint() == await store.last_position()


class CrashingReadModels(SqlReadModelStore):
    """Crashes after writing a number of batches, as a process killed between batches would."""

    def __init__(self, engine: AsyncEngine, batches_before_crash: int) -> None:
        super().__init__(engine)
        self.remaining = batches_before_crash

    async def apply(self, *args: Any, **kwargs: Any) -> None:
        if self.remaining == 0:
            raise ConnectionResetError("process killed")
        self.remaining -= 1
        await super().apply(*args, **kwargs)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches_before_crash=st.integers(0, 12), batch_size=st.integers(1, 9))
async def test_crash_and_resume_neither_repeats_nor_skips(
    engine: AsyncEngine, batches_before_crash: int, batch_size: int
) -> None:
    store = event_store_for(engine)
    for event in random_history(7, prefix=f"{uuid.uuid4().hex[:6]}-"):
        await store.append([event])
    read_models = SqlReadModelStore(engine)
    before = await read_models.checkpoint()
    crashing = InvoiceProjector(
        store, CrashingReadModels(engine, batches_before_crash), owner="p1", batch_size=batch_size
    )
    with contextlib.suppress(ConnectionResetError):  # unless it caught up before the crash
        await crashing.catch_up()
    crashed_at = await read_models.checkpoint()
    assert crashed_at == min(
        before + batches_before_crash * batch_size, await store.last_position()
    )
    await read_models.release_lease("p1")  # as if its lease had lapsed
    await projector(engine, owner="p2", batch_size=batch_size).catch_up()
    resumed = await read_model(engine)
    await rebuild_invoices(store, read_models)
    assert resumed == await read_model(engine)


async def test_only_one_of_two_projectors_writes_at_a_time(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    for event in random_history(11):
        await store.append([event])
    first, second = projector(engine, "first"), projector(engine, "second")
    assert await first.take_lease()
    assert not await second.take_lease()
    await asyncio.gather(first.catch_up(), second.catch_up())
    assert (first.health.leader, second.health.leader) == (True, False)
    assert await SqlReadModelStore(engine).checkpoint() == 80
    # The leader stops; the other takes over where it left off.
    await SqlReadModelStore(engine).release_lease("first")
    await store.append([invoice_event("INV-0", "late", seconds=7200)])
    await second.catch_up()
    assert second.health.leader
    assert await SqlReadModelStore(engine).checkpoint() == 81


async def test_a_projector_whose_lease_was_taken_stops_writing(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    await store.append([invoice_event("A", "a1")])
    stale = projector(engine, "stale")
    await stale.catch_up()
    await SqlReadModelStore(engine).acquire_lease("rebuild", 15, take_over=True)
    await store.append([invoice_event("A", "a2", seconds=5)])
    with pytest.raises(LeaseLost):
        await stale.project_batch()
    assert await stale.catch_up() == 0
    assert not stale.health.leader
    assert await SqlReadModelStore(engine).checkpoint() == 1


async def test_readers_never_see_a_half_built_rebuild(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    for event in random_history(5):
        await store.append([event])
    await projector(engine).catch_up()
    before = await read_model(engine)
    seen_during: list[dict[str, Any]] = []

    async def observe(_: int) -> None:
        seen_during.append(await read_model(engine))

    observations: list[asyncio.Task[None]] = []
    await rebuild_invoices(
        store,
        SqlReadModelStore(engine),
        events_per_page=5,
        on_progress=lambda n: observations.append(asyncio.ensure_future(observe(n))),
    )
    await asyncio.gather(*observations)
    assert len(seen_during) > 3
    assert all(snapshot == before for snapshot in seen_during)
    assert await read_model(engine) == before


async def test_a_running_projector_wakes_promptly_on_new_events(engine: AsyncEngine) -> None:
    """On PostgreSQL the notification wakes it long before its poll; SQLite polls quickly."""
    from service.store.notifications import appended_events_signal

    store = event_store_for(engine)
    running = projector(engine)
    stop, wake = asyncio.Event(), asyncio.Event()
    poll_seconds = 30.0 if engine.dialect.name == "postgresql" else 0.1
    async with appended_events_signal(engine, wake):
        task = asyncio.create_task(running.run(stop, wake, poll_seconds))
        await asyncio.sleep(0.3)  # it has caught up and sleeps
        await store.append([invoice_event("A", "a1")])
        for _ in range(100):
            if await SqlReadModelStore(engine).checkpoint() == 1:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
    assert await SqlReadModelStore(engine).checkpoint() == 1


class BrokenReadModels(SqlReadModelStore):
    async def apply(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError("a read row that cannot be written")


async def test_a_projector_error_stops_it_loudly_instead_of_skipping(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    await store.append([invoice_event("A", "a1")])
    broken = InvoiceProjector(store, BrokenReadModels(engine), owner="p1")
    with pytest.raises(ValueError, match="cannot be written"):
        await broken.run(asyncio.Event(), asyncio.Event(), 0.1)
    assert broken.health.error == "ValueError: a read row that cannot be written"
    assert await SqlReadModelStore(engine).checkpoint() == 0  # nothing was skipped
    assert not broken.health.leader  # and its lease was handed back for another to retry
