"""Leases expire on the database's clock: replicas whose host clocks disagree still agree on
who holds a lease and when it lapses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import database_now
from service.store.schema import projection_checkpoints
from service.store.views.read_model_store import SqlReadModelStore

pytestmark = pytest.mark.anyio
LEASE_SECONDS = 0.5
SKEW = timedelta(hours=1)


def skewed_clock(skew: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + skew


async def test_takeover_follows_the_database_clock_not_the_hosts(engine: AsyncEngine) -> None:
    behind = SqlReadModelStore(engine, clock=skewed_clock(-SKEW))
    ahead = SqlReadModelStore(engine, clock=skewed_clock(SKEW))
    assert await behind.acquire_lease("behind", LEASE_SECONDS)

    # By the clock of a host an hour ahead the lease lapsed long ago: it is live all the same.
    assert not await ahead.acquire_lease("ahead", LEASE_SECONDS)

    await asyncio.sleep(LEASE_SECONDS * 1.5)
    # By the clock of a host an hour behind it has most of an hour to run: it lapsed all the same.
    assert await ahead.acquire_lease("ahead", LEASE_SECONDS)
    assert not await behind.acquire_lease("behind", LEASE_SECONDS)


async def test_a_lease_expires_lease_seconds_after_the_databases_now(engine: AsyncEngine) -> None:
    store = SqlReadModelStore(engine, clock=skewed_clock(SKEW))
    async with engine.connect() as connection:
        before = await database_now(connection)
    assert await store.acquire_lease("owner", LEASE_SECONDS)
    async with engine.connect() as connection:
        after = await database_now(connection)
        expires_at = await connection.scalar(select(projection_checkpoints.c.lease_expires_at))
    assert isinstance(expires_at, datetime)
    lease = timedelta(seconds=LEASE_SECONDS)
    assert before + lease <= expires_at <= after + lease
