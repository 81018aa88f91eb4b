"""The serving reconciler keeps its lease through work longer than the lease itself."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.read.queries import InvoiceQueries
from service.reconciler.worker import LEASE_NAME, ReconcilerWorker
from service.store.views.read_model_store import SqlReadModelStore

pytestmark = pytest.mark.anyio
LEASE_SECONDS = 0.3


def worker(engine: AsyncEngine, owner: str) -> ReconcilerWorker:
    # The reconciler itself is not reached: these tests give the worker their own work.
    return ReconcilerWorker(
        None,  # type: ignore[arg-type]
        InvoiceQueries(engine),
        SqlReadModelStore(engine),
        owner=owner,
        sweep_interval_seconds=3600,
        lease_seconds=LEASE_SECONDS,
    )


async def test_the_lease_is_renewed_while_long_work_runs(engine: AsyncEngine) -> None:
    read_models = SqlReadModelStore(engine)
    assert await read_models.acquire_lease("first", LEASE_SECONDS, LEASE_NAME)
    rival_took_it: list[bool] = []

    async def long_work() -> None:
        for _ in range(4):  # three lease periods and more
            await asyncio.sleep(LEASE_SECONDS)
            rival_took_it.append(
                await read_models.acquire_lease("rival", LEASE_SECONDS, LEASE_NAME)
            )

    assert await worker(engine, "first").holding_lease(long_work())
    assert rival_took_it == [False, False, False, False]


async def test_work_is_cancelled_when_another_replica_takes_the_lease(engine: AsyncEngine) -> None:
    read_models = SqlReadModelStore(engine)
    assert await read_models.acquire_lease("first", LEASE_SECONDS, LEASE_NAME)
    finished: list[bool] = []

    async def long_work() -> None:
        await read_models.acquire_lease("rival", 60, LEASE_NAME, take_over=True)
        await asyncio.sleep(LEASE_SECONDS * 3)
        finished.append(True)

    assert not await worker(engine, "first").holding_lease(long_work())
    assert finished == []
