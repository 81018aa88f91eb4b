"""Inbox retention on both engines: pruning removes expired refusals (and, when asked, expired
accepted deliveries) and nothing else: never events, dead letters or conflicts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import InboxEntry
from service.store.events.for_engine import event_store_for
from service.store.retention import PrunableKind, PruneResult, count_prunable, prune
from service.store.schema import InboxOutcome, events, inbox
from service.workers.retention import RetentionPolicy, apply_retention, run_retention
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)
CUTOFF = NOW - timedelta(days=30)

# (outcome, body) for every kind of row the inbox holds.
KINDS = {
    "refused": (InboxOutcome.REJECTED, None),
    "dead_letter": (InboxOutcome.REJECTED, b'{"unreadable": true}'),
    "accepted": (InboxOutcome.ACCEPTED, b"{}"),
    "duplicate": (InboxOutcome.DUPLICATE, b"{}"),
    "ignored": (InboxOutcome.IGNORED, b"{}"),
    "conflict": (InboxOutcome.CONFLICT, b"{}"),
}


async def seed(engine: AsyncEngine, rows_per_kind: int = 2) -> None:
    """Each kind of row, old and recent, and events recorded with an inbox row of their own."""
    async with engine.begin() as connection:
        for kind, (outcome, body) in KINDS.items():
            for received_at in (OLD, RECENT):
                for number in range(rows_per_kind):
                    await connection.execute(
                        insert(inbox).values(
                            received_at=received_at,
                            outcome=outcome.value,
                            reason=kind,
                            notification_id=f"{kind}-{received_at:%j}-{number}",
                            body=body,
                        )
                    )
    await event_store_for(engine).append(
        [invoice_event("INV-R1", "key-r1")], InboxEntry(received_at=OLD, body=b"{}")
    )


async def remaining(engine: AsyncEngine) -> dict[tuple[str, bool], int]:
    """Rows left by (reason, old?)."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(inbox.c.reason, inbox.c.received_at))
        counts: dict[tuple[str, bool], int] = {}
        for reason, received_at in rows:
            key = (reason or "appended", received_at < CUTOFF)
            counts[key] = counts.get(key, 0) + 1
        return counts


async def event_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(events))).scalar_one()
        )


async def test_pruning_refusals_removes_only_expired_refusals(engine: AsyncEngine) -> None:
    await seed(engine)
    before = await remaining(engine)
    assert await count_prunable(engine, PrunableKind.REFUSED, CUTOFF) == 2

    result = await prune(engine, PrunableKind.REFUSED, CUTOFF)

    assert (result.rows, result.complete) == (2, True)
    after = await remaining(engine)
    assert ("refused", True) not in after
    assert after == {key: count for key, count in before.items() if key != ("refused", True)}
    assert await event_count(engine) == 1


async def test_pruning_accepted_deliveries_keeps_dead_letters_conflicts_and_events(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    for kind in (PrunableKind.ACCEPTED, PrunableKind.DUPLICATE, PrunableKind.IGNORED):
        await prune(engine, kind, CUTOFF)

    after = await remaining(engine)
    for kind in ("accepted", "duplicate", "ignored", "appended"):
        assert (kind, True) not in after
        assert after.get((kind, False), 0) == (0 if kind == "appended" else 2)
    for kept in ("dead_letter", "conflict", "refused"):
        assert after[(kept, True)] == 2
    assert await event_count(engine) == 1  # the accepted delivery's fact stays


async def test_pruning_goes_in_bounded_batches_and_says_when_more_remain(
    engine: AsyncEngine,
) -> None:
    await seed(engine, rows_per_kind=5)
    partial = await prune(engine, PrunableKind.REFUSED, CUTOFF, batch_rows=2, batches_max=2)
    assert (partial.rows, partial.complete) == (4, False)
    rest = await prune(engine, PrunableKind.REFUSED, CUTOFF, batch_rows=2, batches_max=2)
    assert (rest.rows, rest.complete) == (1, True)


async def test_the_default_policy_prunes_refusals_and_keeps_accepted_deliveries(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    policy = RetentionPolicy.from_days(refused_days=30, accepted_days=None)
    results = await apply_retention(engine, policy, NOW)
    assert [(result.kind, result.rows) for result in results] == [(PrunableKind.REFUSED, 2)]
    after = await remaining(engine)
    assert after[("accepted", True)] == 2 and after[("dead_letter", True)] == 2


@pytest.mark.postgresql
async def test_the_database_refuses_to_prune_dead_letters_or_conflicts(
    postgresql_database_url: str,
) -> None:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        await seed(engine)
        for kind in ("rejected", "conflict", "dead_letter"):
            with pytest.raises(DBAPIError):
                async with engine.begin() as connection:
                    await connection.execute(
                        text("SELECT ledger_prune_inbox(:kind, :cutoff, 100)"),
                        {"kind": kind, "cutoff": NOW},
                    )
        after = await remaining(engine)
        assert after[("dead_letter", True)] == 2 and after[("conflict", True)] == 2
    finally:
        await engine.dispose()


@pytest.mark.postgresql
async def test_the_least_privileged_service_role_prunes_through_the_function(
    postgresql_database_url: str,
    service_role_url: str,
) -> None:
    owner = create_engine(resolve_database_url(postgresql_database_url))
    service = create_engine(resolve_database_url(service_role_url))
    try:
        await seed(owner)
        result = await prune(service, PrunableKind.REFUSED, CUTOFF)
        assert result.rows == 2
        assert ("refused", True) not in await remaining(owner)
    finally:
        await service.dispose()
        await owner.dispose()


async def test_the_scheduled_policy_prunes_on_its_own_and_stops_when_told(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    pruned: list[PruneResult] = []
    stop, ran = asyncio.Event(), asyncio.Event()

    def on_pruned(result: PruneResult) -> None:
        pruned.append(result)
        ran.set()

    policy = RetentionPolicy.from_days(refused_days=30, accepted_days=None)
    worker = asyncio.create_task(
        run_retention(engine, policy, stop, 3600, on_pruned, first_run_delay_seconds=0.05)
    )
    async with asyncio.timeout(20):
        await ran.wait()
        stop.set()
        await worker
    assert [(result.kind, result.rows) for result in pruned] == [(PrunableKind.REFUSED, 2)]
    assert ("refused", True) not in await remaining(engine)
