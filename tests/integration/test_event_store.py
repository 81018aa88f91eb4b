from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.store.events.base import AppendOutcome, EventStore, InboxEntry
from service.store.schema import InboxOutcome
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio


async def test_an_appended_event_reads_back_as_it_was_written(event_store: EventStore) -> None:
    event = invoice_event(balanceAmount="102.00", currency="USD")
    [result] = await event_store.append([event])
    assert result.outcome is AppendOutcome.APPENDED
    [recorded] = await event_store.read_after(0, limit=10)
    assert recorded.position == result.position
    assert (recorded.stream_id, recorded.version, recorded.type) == ("INV-1", 1, event.type)
    assert recorded.occurred_at == event.occurred_at
    assert recorded.occurred_at.tzinfo is not None
    assert recorded.source == event.source
    assert recorded.data == event.data


async def test_the_same_fact_twice_is_one_event(event_store: EventStore) -> None:
    [first] = await event_store.append([invoice_event()])
    [second] = await event_store.append([invoice_event()])
    assert second.outcome is AppendOutcome.DUPLICATE
    assert second.position == first.position
    assert len(await event_store.read_after(0, limit=10)) == 1


async def test_the_same_key_with_other_content_is_a_conflict_and_the_first_stays(
    event_store: EventStore,
) -> None:
    await event_store.append([invoice_event(balanceAmount="10.00")])
    [result] = await event_store.append([invoice_event(balanceAmount="99.00")])
    assert result.outcome is AppendOutcome.CONFLICT
    [recorded] = await event_store.read_after(0, limit=10)
    assert recorded.data["balanceAmount"] == "10.00"


async def test_each_stream_counts_its_own_versions(event_store: EventStore) -> None:
    for index in range(3):
        await event_store.append([invoice_event("A", f"a{index}")])
        await event_store.append([invoice_event("B", f"b{index}")])
    assert [e.version for e in await event_store.read_stream("A")] == [1, 2, 3]
    assert [e.version for e in await event_store.read_stream("B")] == [1, 2, 3]
    positions = [e.position for e in await event_store.read_after(0, limit=100)]
    assert positions == sorted(positions) and len(positions) == 6


async def test_reading_after_a_position_pages_in_order(event_store: EventStore) -> None:
    for index in range(7):
        await event_store.append([invoice_event(f"S{index}", f"k{index}")])
    seen, checkpoint = [], 0
    while batch := await event_store.read_after(checkpoint, limit=3):
        seen.extend(event.stream_id for event in batch)
        checkpoint = batch[-1].position
    assert seen == [f"S{index}" for index in range(7)]


async def test_the_inbox_row_is_written_with_the_event(event_store: EventStore) -> None:
    entry = InboxEntry(received_at=datetime.now(UTC), notification_id="n-1", body=b"{}")
    [result] = await event_store.append([invoice_event()], entry)
    await event_store.append([invoice_event()], entry)
    [duplicate, accepted] = await event_store.inbox_entries()
    assert accepted["outcome"] == InboxOutcome.ACCEPTED
    assert accepted["event_position"] == result.position
    assert bytes(accepted["body"]) == b"{}"
    assert duplicate["outcome"] == InboxOutcome.DUPLICATE


async def test_concurrent_copies_of_one_fact_append_exactly_once(
    event_store: EventStore,
) -> None:
    results = await asyncio.gather(*(event_store.append([invoice_event()]) for _ in range(16)))
    outcomes = [result.outcome for [result] in results]
    assert outcomes.count(AppendOutcome.APPENDED) == 1
    assert outcomes.count(AppendOutcome.DUPLICATE) == 15
    assert len(await event_store.read_after(0, limit=100)) == 1


async def test_concurrent_facts_on_one_stream_all_append_with_distinct_versions(
    event_store: EventStore,
) -> None:
    results = await asyncio.gather(
        *(event_store.append([invoice_event("HOT", f"k{index}")]) for index in range(16))
    )
    assert all(result.outcome is AppendOutcome.APPENDED for [result] in results)
    assert [e.version for e in await event_store.read_stream("HOT")] == list(range(1, 17))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'InvoicePaid'",
        "UPDATE events SET data = data",
        "DELETE FROM events",
    ],
)
async def test_the_database_refuses_to_change_recorded_events(
    event_store: EventStore, statement: str
) -> None:
    await event_store.append([invoice_event()])
    engine = event_store._engine
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    [recorded] = await event_store.read_after(0, limit=10)
    assert recorded.type == invoice_event().type


async def test_postgresql_also_refuses_truncate(postgresql_database_url: str) -> None:
    from service.settings import resolve_database_url
    from service.store.database import create_engine

    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text("TRUNCATE events"))
    finally:
        await engine.dispose()
