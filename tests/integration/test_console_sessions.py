"""Console sessions on both engines: only a digest of the id is kept, and a session ends at
sign-out and at expiry, after which it is pruned in bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.console_sessions import SqlConsoleSessions
from service.store.schema import console_sessions

pytestmark = pytest.mark.anyio
LIFETIME_SECONDS = 3600


async def expire_all(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await connection.execute(update(console_sessions).values(expires_at=past))


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        counted = await connection.execute(select(func.count()).select_from(console_sessions))
        return int(counted.scalar_one())


async def test_a_session_is_found_by_its_id_which_is_never_stored(engine: AsyncEngine) -> None:
    sessions = SqlConsoleSessions(engine, LIFETIME_SECONDS)
    session_id = await sessions.create("token:0123456789ab", "operator")
    found = await sessions.find_valid(session_id)
    assert found is not None
    assert (found.caller_name, found.scope) == ("token:0123456789ab", "operator")
    assert found.expires_at - found.created_at == timedelta(seconds=LIFETIME_SECONDS)
    assert await sessions.find_valid(session_id[:-1] + "x") is None
    assert await sessions.find_valid("x" * 1000) is None
    async with engine.connect() as connection:
        [stored] = (await connection.execute(select(console_sessions))).all()
    assert session_id not in [str(value) for value in stored]


async def test_a_signed_out_session_is_no_longer_found(engine: AsyncEngine) -> None:
    sessions = SqlConsoleSessions(engine, LIFETIME_SECONDS)
    kept, ended = [await sessions.create("token:0123456789ab", "read") for _ in range(2)]
    assert await sessions.revoke(ended) is True
    assert await sessions.revoke(ended) is False
    assert await sessions.find_valid(ended) is None
    assert await sessions.find_valid(kept) is not None


async def test_expired_sessions_are_refused_and_pruned_a_bounded_batch_at_a_time(
    engine: AsyncEngine,
) -> None:
    sessions = SqlConsoleSessions(engine, LIFETIME_SECONDS)
    expired = [await sessions.create("token:0123456789ab", "read") for _ in range(5)]
    await sessions.revoke(expired[0])
    await expire_all(engine)
    live = await sessions.create("token:0123456789ab", "read")
    assert [await sessions.find_valid(session) for session in expired] == [None] * 5
    assert await sessions.revoke(expired[1]) is False
    assert await sessions.prune_expired(rows_max=3) == 3
    assert await sessions.prune_expired(rows_max=3) == 2
    assert await sessions.prune_expired(rows_max=3) == 0
    assert await rows(engine) == 1
    assert await sessions.find_valid(live) is not None
