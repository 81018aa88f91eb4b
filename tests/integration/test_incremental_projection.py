"""The projector folds a batch's new facts onto each stream's snapshot instead of re-reading
the stream: a long-lived invoice costs a batch only its new facts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import InvoiceEventType, NewEvent, RecordedEvent
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.store.events.base import SqlEventStore
from service.store.events.for_engine import event_store_for
from service.store.schema import invoice_fold_snapshots
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event
from tests.support.projections import read_model

pytestmark = pytest.mark.anyio
E = InvoiceEventType
LONG_STREAM_EVENTS = 2000


class CountingEventStore(SqlEventStore):
    """Counts every event the projector reads from the store."""

    events_read = 0

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]:
        events = await super().read_after(position, limit)
        self.events_read += len(events)
        return events

    async def read_streams(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, list[RecordedEvent]]:
        streams = await super().read_streams(stream_ids, up_to_position)
        self.events_read += sum(len(events) for events in streams.values())
        return streams


def long_lived_invoice() -> list[NewEvent]:
    """Sent, then reminded every minute, with a partial payment every 500 reminders."""
    events = [invoice_event("LONG", "sent", balanceAmount="5000.00", totalAmount="5000.00")]
    for minute in range(1, LONG_STREAM_EVENTS):
        if minute % 500 == 0:
            balance = f"{5000 - minute}.00"
            events.append(
                invoice_event(
                    "LONG",
                    f"paid-{minute}",
                    seconds=60 * minute,
                    type=E.INVOICE_PARTIALLY_PAID,
                    balanceAmount=balance,
                )
            )
        else:
            events.append(
                invoice_event(
                    "LONG",
                    f"reminder-{minute}",
                    seconds=60 * minute,
                    type=E.INVOICE_REMINDER_SENT,
                    balanceAmount=None,
                )
            )
    return events  # fmt: skip


async def project(engine: AsyncEngine) -> int:
    """Catch up once; returns how many events the projector read to do it."""
    store = CountingEventStore(engine)
    projector = InvoiceProjector(store, SqlReadModelStore(engine), owner="p1", batch_size=1000)
    await projector.catch_up()
    await projector.release_lease()
    return store.events_read


async def test_a_new_fact_of_a_long_lived_invoice_is_projected_by_reading_that_fact_alone(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine)
    await store.append(long_lived_invoice())
    await project(engine)
    minute = LONG_STREAM_EVENTS + 1
    payment = invoice_event(
        "LONG", "late-payment", seconds=60 * minute, type=E.INVOICE_PARTIALLY_PAID,
        balanceAmount="10.00",
    )  # fmt: skip
    await store.append([payment])
    assert await project(engine) == 1
    incremental = await read_model(engine)
    [invoice] = incremental["invoices"]
    assert (invoice["status"], invoice["balance_amount"]) == ("PARTIAL", 10)
    assert len(incremental["versions"]) == LONG_STREAM_EVENTS + 1  # one state per instant
    await rebuild_invoices(store, SqlReadModelStore(engine))
    assert await read_model(engine) == incremental


async def test_a_fact_dated_before_what_a_snapshot_folded_makes_the_stream_read_again(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine)
    await store.append(long_lived_invoice())
    await project(engine)
    cancel = invoice_event(
        "LONG", "late-cancel", seconds=90, type=E.INVOICE_CANCELED, balanceAmount=None
    )
    await store.append([cancel])
    assert await project(engine) == 1 + LONG_STREAM_EVENTS + 1
    incremental = await read_model(engine)
    assert incremental["invoices"][0]["status"] == "CANCELED"
    await rebuild_invoices(store, SqlReadModelStore(engine))
    assert await read_model(engine) == incremental


async def test_a_rebuild_drops_the_snapshots_and_the_projector_keeps_new_ones(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine)
    await store.append([invoice_event("A", "a"), invoice_event("B", "b")])
    await project(engine)

    async def snapshots() -> int:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(invoice_fold_snapshots)
            )
        return int(count or 0)

    assert await snapshots() == 2
    await rebuild_invoices(store, SqlReadModelStore(engine))
    assert await snapshots() == 0
    await store.append([invoice_event("A", "a2", seconds=5, type=E.INVOICE_REMINDER_SENT)])
    assert await project(engine) == 1 + 2  # the new fact, then stream A whole, once
    assert await snapshots() == 1
