"""Invariant 6: a reader that follows positions never passes over an event that commits late.

PostgreSQL hands out positions before commit. A deferred constraint trigger makes the commit
of chosen appends sleep, *after* their position is taken, so later appends commit first and
leave a hole that fills only when the slow one commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select, text

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import EventStore
from service.store.events.for_engine import event_store_for
from service.store.events.group_commit import GroupCommitter
from service.store.schema import events
from tests.support.events import invoice_event

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql]

COMMIT_DELAY_SECONDS = 1.0


@pytest.fixture
async def store_with_slow_commits(postgresql_database_url: str) -> AsyncIterator[EventStore]:
    engine = create_engine(resolve_database_url(postgresql_database_url), pool_size=20)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"""
                CREATE FUNCTION delay_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.stream_id LIKE 'slow-%' THEN
                        PERFORM pg_sleep({COMMIT_DELAY_SECONDS});
                    END IF;
                    RETURN NULL;
                END $$
                """
            )
        )
        await connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER delay_commit AFTER INSERT ON events"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION delay_commit()"
            )
        )
    yield event_store_for(engine)
    await engine.dispose()


async def follow(store: EventStore, stop: asyncio.Event) -> list[int]:
    """Read as a projector does: remember the last position, ask for what comes after."""
    seen: list[int] = []
    checkpoint = 0
    while True:
        batch = await store.read_after(checkpoint, limit=100)
        if batch:
            seen.extend(event.position for event in batch)
            checkpoint = batch[-1].position
        elif stop.is_set():
            return seen
        await asyncio.sleep(0.005)


async def append_concurrently(store: EventStore) -> None:
    slow = [
        asyncio.create_task(store.append([invoice_event(f"slow-{index}", f"slow-{index}")]))
        for index in range(4)
    ]
    await asyncio.sleep(0.2)  # the slow appends hold their positions and wait to commit
    fast = [store.append([invoice_event(f"fast-{index}", f"fast-{index}")]) for index in range(20)]
    await asyncio.gather(*fast, *slow)


async def test_a_position_follower_never_skips_an_event_that_commits_late(
    store_with_slow_commits: EventStore,
) -> None:
    store = store_with_slow_commits
    stop = asyncio.Event()
    follower = asyncio.create_task(follow(store, stop))
    await append_concurrently(store)
    stop.set()
    seen = await follower
    every = [event.position for event in await store.read_after(0, limit=1000)]
    assert len(every) == 24
    assert seen == every  # each event seen once, none skipped, in position order


async def append_concurrently_in_groups(store: EventStore) -> None:
    """As two receivers would: each gathers its deliveries into groups, one commits late."""
    slow_receiver, fast_receiver = GroupCommitter(store), GroupCommitter(store)
    try:
        slow = [
            asyncio.create_task(
                slow_receiver.append([invoice_event(f"slow-{index}", f"slow-{index}")])
            )
            for index in range(4)
        ]
        await asyncio.sleep(0.2)  # the slow group holds its positions and waits to commit
        fast = [
            fast_receiver.append([invoice_event(f"fast-{index}", f"fast-{index}")])
            for index in range(20)
        ]
        await asyncio.gather(*fast, *slow)
    finally:
        await slow_receiver.close()
        await fast_receiver.close()


async def test_a_position_follower_never_skips_a_group_that_commits_late(
    store_with_slow_commits: EventStore,
) -> None:
    store = store_with_slow_commits
    stop = asyncio.Event()
    follower = asyncio.create_task(follow(store, stop))
    await append_concurrently_in_groups(store)
    stop.set()
    seen = await follower
    every = [event.position for event in await store.read_after(0, limit=1000)]
    assert len(every) == 24
    assert seen == every  # each event seen once, none skipped, in position order


@pytest.mark.parametrize("appending", [append_concurrently, append_concurrently_in_groups])
async def test_without_the_horizon_a_naive_follower_would_skip(
    store_with_slow_commits: EventStore,
    appending: Callable[[EventStore], Awaitable[None]],
) -> None:
    """Proves the setup really produces late commits that a plain query would pass over,
    with single appends and with groups alike."""
    store = store_with_slow_commits
    engine = store._engine
    checkpoint = 0
    seen: list[int] = []
    appended = asyncio.create_task(appending(store))
    while not appended.done():
        async with engine.connect() as connection:
            rows = (
                (
                    await connection.execute(
                        select(events.c.position)
                        .where(events.c.position > checkpoint)
                        .order_by(events.c.position)
                    )
                )
                .scalars()
                .all()
            )
        if rows:
            seen.extend(rows)
            checkpoint = rows[-1]
        await asyncio.sleep(0.005)
    await appended
    every = [event.position for event in await store.read_after(0, limit=1000)]
    assert set(every) - set(seen), "the naive follower saw everything: no late commit happened"
