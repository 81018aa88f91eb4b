"""The contract every event store keeps, run against both: PostgresEventStore and
SqliteEventStore (the ``event_store`` fixture gives each in turn), directly and through the
group committer that gathers concurrent deliveries into one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from service.settings import resolve_database_url
from service.store.database import create_engine, is_postgresql
from service.store.errors import StoreUnavailable
from service.store.events.base import (
    STREAM_LOCK_CLASS,
    AppendOutcome,
    AppendResult,
    Delivery,
    EventStore,
    InboxEntry,
)
from service.store.events.for_engine import event_store_for
from service.store.events.group_commit import GroupCommitter
from service.store.events.postgres import PostgresEventStore
from service.store.events.sqlite import SqliteEventStore
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio

# Long enough that every append started together lands in one group.
GATHERING_SECONDS = 0.5
NOTIFICATION_WAIT_SECONDS = 0.5


def delivery(stream_id: str, key: str, *, balance: str = "10.00") -> Delivery:
    entry = InboxEntry(received_at=datetime.now(UTC), notification_id=key)
    return Delivery([invoice_event(stream_id, key, balanceAmount=balance)], entry)


async def inbox_outcomes(store: EventStore) -> dict[str, str]:
    return {row["notification_id"]: row["outcome"] for row in await store.inbox_entries(limit=1000)}


@pytest.fixture
async def committer(event_store: EventStore) -> AsyncIterator[GroupCommitter]:
    group_commit = GroupCommitter(event_store, group_wait_seconds=GATHERING_SECONDS)
    yield group_commit
    await group_commit.close()


async def test_each_engine_has_its_own_store(event_store: EventStore, database_url: str) -> None:
    expected = PostgresEventStore if database_url.startswith("postgresql") else SqliteEventStore
    assert type(event_store) is expected


async def test_a_group_appends_finds_and_flags_as_separate_appends_would(
    event_store: EventStore,
) -> None:
    [first] = await event_store.append([invoice_event("INV-1", "a")])
    results = await event_store.append_group(
        [
            delivery("INV-2", "b"),
            Delivery([invoice_event("INV-1", "a")]),
            Delivery([invoice_event("INV-1", "a", balanceAmount="99.00")]),
        ]
    )
    assert results[0] == [AppendResult(AppendOutcome.APPENDED, first.position + 1)]
    assert results[1] == [AppendResult(AppendOutcome.DUPLICATE, first.position)]
    assert results[2] == [AppendResult(AppendOutcome.CONFLICT, first.position)]


async def test_the_same_notification_twice_in_one_group_is_one_event(
    event_store: EventStore,
) -> None:
    results = await event_store.append_group(
        [delivery("INV-1", "n-1"), delivery("INV-1", "n-1"), delivery("INV-1", "n-1", balance="1")]
    )
    [[appended], [duplicate], [conflict]] = results
    assert appended.outcome is AppendOutcome.APPENDED
    assert duplicate == AppendResult(AppendOutcome.DUPLICATE, appended.position)
    assert conflict == AppendResult(AppendOutcome.CONFLICT, appended.position)
    assert len(await event_store.read_after(0, limit=100)) == 1


async def test_a_group_keeps_one_inbox_row_per_delivery_with_its_outcome(
    event_store: EventStore,
) -> None:
    await event_store.append_group(
        [delivery("INV-1", "n-1"), delivery("INV-1", "n-1"), delivery("INV-1", "n-1", balance="1")]
    )
    rows = await event_store.inbox_entries(limit=100)
    assert sorted(row["outcome"] for row in rows) == ["accepted", "conflict", "duplicate"]
    [event] = await event_store.read_after(0, limit=100)
    assert {row["event_position"] for row in rows} == {event.position}


async def test_a_group_numbers_each_streams_versions_in_order(event_store: EventStore) -> None:
    await event_store.append([invoice_event("INV-1", "a")])
    await event_store.append_group(
        [delivery("INV-1", "b"), delivery("INV-2", "c"), delivery("INV-1", "d")]
    )
    versions = [(e.stream_id, e.version) for e in await event_store.read_after(0, limit=100)]
    assert versions == [("INV-1", 1), ("INV-1", 2), ("INV-2", 1), ("INV-1", 3)]


async def refuse_stream(store: EventStore, stream_id: str) -> None:
    """A database trigger that fails the insert of one stream's events (not an outage)."""
    async with store._engine.begin() as connection:
        if is_postgresql(store._engine):
            await connection.execute(
                text(
                    "CREATE FUNCTION refuse_stream() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN IF NEW.stream_id = '{stream_id}' THEN"
                    " RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_stream BEFORE INSERT ON events"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_stream()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_stream BEFORE INSERT ON events"
                    f" WHEN NEW.stream_id = '{stream_id}'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )


async def test_one_failing_delivery_fails_alone_and_the_rest_of_its_group_is_stored(
    event_store: EventStore,
) -> None:
    await refuse_stream(event_store, "BAD")
    results = await event_store.append_group(
        [delivery("INV-1", "a"), delivery("BAD", "b"), delivery("INV-2", "c")]
    )
    assert isinstance(results[1], Exception)
    assert not isinstance(results[1], StoreUnavailable)
    assert [result[0].outcome for result in (results[0], results[2])] == ["appended"] * 2
    stored = await event_store.read_after(0, limit=100)
    assert [event.idempotency_key for event in stored] == ["a", "c"]
    assert await inbox_outcomes(event_store) == {"a": "accepted", "c": "accepted"}


async def test_concurrent_appends_through_the_committer_are_answered_as_direct_ones(
    event_store: EventStore, committer: GroupCommitter
) -> None:
    [first] = await event_store.append([invoice_event("INV-1", "a")])
    results = await asyncio.gather(
        *(committer.append(d.events, d.inbox_entry) for d in [
            delivery("INV-1", "a"),
            delivery("INV-1", "a", balance="5.00"),
            delivery("INV-2", "b"),
            delivery("INV-2", "b"),
        ])
    )  # fmt: skip
    assert [result[0].outcome for result in results] == [
        "duplicate", "conflict", "appended", "duplicate",
    ]  # fmt: skip
    assert results[0][0].position == results[1][0].position == first.position
    assert results[2][0].position == results[3][0].position
    assert len(await event_store.read_after(0, limit=100)) == 2
    assert len(await event_store.inbox_entries(limit=100)) == 4


async def test_a_failing_delivery_through_the_committer_does_not_fail_its_group(
    event_store: EventStore, committer: GroupCommitter
) -> None:
    await refuse_stream(event_store, "BAD")
    outcomes = await asyncio.gather(
        *(
            committer.append(d.events, d.inbox_entry)
            for d in [delivery("INV-1", "a"), delivery("BAD", "b"), delivery("INV-2", "c")]
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception) and not isinstance(outcomes[1], StoreUnavailable)
    assert [outcome[0].outcome for outcome in outcomes if isinstance(outcome, list)] == [
        "appended", "appended",
    ]  # fmt: skip
    assert await inbox_outcomes(event_store) == {"a": "accepted", "c": "accepted"}


async def test_a_database_that_is_away_fails_every_delivery_of_the_group(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("postgresql"):
        url = make_url(database_url).set(port=1)  # nothing listens there
        unreachable = url.render_as_string(hide_password=False)
    else:
        unreachable = f"sqlite:///{tmp_path / 'no-such-directory' / 'ledger.db'}"
    engine = create_engine(resolve_database_url(unreachable))
    store = event_store_for(engine)
    committer = GroupCommitter(store, group_wait_seconds=GATHERING_SECONDS)
    try:
        outcomes = await asyncio.gather(
            *(
                committer.append(d.events, d.inbox_entry)
                for d in [delivery("INV-1", "a"), delivery("INV-2", "b"), delivery("INV-3", "c")]
            ),
            return_exceptions=True,
        )
    finally:
        await committer.close()
        await engine.dispose()
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes


async def test_a_closed_committer_stores_what_was_queued_and_refuses_the_rest(
    event_store: EventStore,
) -> None:
    committer = GroupCommitter(event_store, group_wait_seconds=GATHERING_SECONDS)
    queued = [
        asyncio.create_task(committer.append(d.events, d.inbox_entry))
        for d in [delivery("INV-1", "a"), delivery("INV-2", "b")]
    ]
    await asyncio.sleep(0.05)  # both wait in the queue or the gathering group
    await committer.close()
    assert [result[0].outcome for result in await asyncio.gather(*queued)] == ["appended"] * 2
    with pytest.raises(StoreUnavailable):
        await committer.append([invoice_event("INV-3", "c")])
    assert len(await event_store.read_after(0, limit=100)) == 2


async def test_a_full_queue_refuses_at_once_rather_than_waiting(event_store: EventStore) -> None:
    committer = GroupCommitter(event_store, group_wait_seconds=GATHERING_SECONDS, queue_size_max=1)
    try:
        first = asyncio.create_task(committer.append([invoice_event("INV-1", "a")]))
        await asyncio.sleep(0.05)  # the writer holds the first and gathers for more
        second = asyncio.create_task(committer.append([invoice_event("INV-2", "b")]))
        await asyncio.sleep(0)
        with pytest.raises(StoreUnavailable):
            await committer.append([invoice_event("INV-3", "c")])
        await asyncio.gather(first, second)
    finally:
        await committer.close()


@pytest.mark.postgresql
async def test_a_group_commits_in_one_transaction_with_one_notification(
    postgresql_database_url: str,
) -> None:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    store = event_store_for(engine)
    committer = GroupCommitter(store, group_wait_seconds=GATHERING_SECONDS)
    listener = await asyncpg.connect(postgresql_database_url)
    notifications: list[str] = []
    await listener.add_listener("ledger_events", lambda *args: notifications.append(args[2]))
    try:
        deliveries = [delivery(f"INV-{index}", f"n-{index}") for index in range(10)]
        await asyncio.gather(*(committer.append(d.events, d.inbox_entry) for d in deliveries))
        await asyncio.sleep(NOTIFICATION_WAIT_SECONDS)
        assert len(notifications) == 1
        async with engine.connect() as connection:
            transactions = await connection.scalar(
                text("SELECT count(DISTINCT xmin::text) FROM events")
            )
        assert transactions == 1

        await store.append_group(deliveries)  # only duplicates: nothing new to wake anyone for
        await asyncio.sleep(NOTIFICATION_WAIT_SECONDS)
        assert len(notifications) == 1
    finally:
        await listener.close()
        await committer.close()
        await engine.dispose()


async def test_a_committer_closed_past_its_grace_fails_what_it_had_not_written(
    event_store: EventStore,
) -> None:
    committer = GroupCommitter(event_store, group_wait_seconds=GATHERING_SECONDS)
    gathering = asyncio.create_task(committer.append([invoice_event("INV-1", "a")]))
    await asyncio.sleep(0.05)  # the writer holds it and gathers for more
    await committer.close(grace_seconds=0)
    with pytest.raises(StoreUnavailable):
        await gathering
    assert await event_store.read_after(0, limit=100) == []


@pytest.mark.postgresql
async def test_a_group_held_up_at_the_database_does_not_hold_up_the_next(
    postgresql_database_url: str,
) -> None:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    committer = GroupCommitter(event_store_for(engine), group_wait_seconds=0)
    holder = await asyncpg.connect(postgresql_database_url)
    try:
        # Another append holds INV-1's stream lock: a group with INV-1 waits at the database.
        await holder.execute("SELECT pg_advisory_lock($1, hashtext('INV-1'))", STREAM_LOCK_CLASS)
        held_up = asyncio.create_task(committer.append([invoice_event("INV-1", "a")]))
        await asyncio.sleep(GATHERING_SECONDS)
        assert not held_up.done()
        async with asyncio.timeout(GATHERING_SECONDS * 10):
            [other] = await committer.append([invoice_event("INV-2", "b")])
        assert other.outcome is AppendOutcome.APPENDED
        await holder.execute("SELECT pg_advisory_unlock_all()")
        [first] = await held_up
        assert first.outcome is AppendOutcome.APPENDED
    finally:
        await holder.close()
        await committer.close()
        await engine.dispose()


@pytest.mark.parametrize("groups_in_flight_max", [1, 2])
async def test_an_append_made_as_soon_as_the_previous_one_is_answered_is_stored(
    event_store: EventStore, groups_in_flight_max: int
) -> None:
    committer = GroupCommitter(
        event_store, group_wait_seconds=0, groups_in_flight_max=groups_in_flight_max
    )
    try:
        async with asyncio.timeout(5):
            for number in range(3):
                [result] = await committer.append([invoice_event("INV-1", f"k{number}")])
                assert result.outcome is AppendOutcome.APPENDED
    finally:
        await committer.close()
    assert len(await event_store.read_after(0, limit=100)) == 3
