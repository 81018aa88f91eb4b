"""Inbox retention: which delivery rows may be deleted, and deleting them in bounded batches.

Only traces that nothing depends on are ever deleted: refused deliveries (rejected without a
body: 401, 408, 413) and, when asked for explicitly, accepted, duplicate and ignored ones
(their facts are in the event store). Never events; never dead letters (rejected with a
body) nor conflicts, which wait for an operator.

On PostgreSQL the delete goes through ``ledger_prune_inbox`` (migration 0007), a function
that owns the rule, so the service's role needs no DELETE on the inbox: even a compromised
service can only remove what retention would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import InboxOutcome, inbox

# Rows deleted per transaction: short transactions keep the inbox's writers unblocked.
PRUNE_BATCH_ROWS = 1000
# Batches per run; a backlog larger than this is finished by the next run.
PRUNE_BATCHES_MAX = 1000


class PrunableKind(StrEnum):
    REFUSED = "refused"
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def prunable(kind: PrunableKind) -> ColumnElement[bool]:
    """The rows of a kind; the same rule as ``ledger_prune_inbox`` on PostgreSQL."""
    if kind is PrunableKind.REFUSED:
        return and_(inbox.c.outcome == InboxOutcome.REJECTED.value, inbox.c.body.is_(None))
    return inbox.c.outcome == InboxOutcome(kind.value).value


@dataclass(frozen=True, slots=True)
class PruneResult:
    kind: PrunableKind
    rows: int
    complete: bool  # False when the batch bound stopped the run before the backlog's end


async def count_prunable(engine: AsyncEngine, kind: PrunableKind, cutoff: datetime) -> int:
    async with unavailability_as_store_error(), engine.connect() as connection:
        counted = await connection.execute(
            select(func.count())
            .select_from(inbox)
            .where(prunable(kind), inbox.c.received_at < cutoff)
        )
        return int(counted.scalar_one())


async def prune(
    engine: AsyncEngine,
    kind: PrunableKind,
    cutoff: datetime,
    *,
    batch_rows: int = PRUNE_BATCH_ROWS,
    batches_max: int = PRUNE_BATCHES_MAX,
) -> PruneResult:
    """Delete the rows of ``kind`` received before ``cutoff``, oldest first, a batch per
    transaction."""
    total = 0
    for _ in range(batches_max):
        deleted = await _prune_batch(engine, kind, cutoff, batch_rows)
        total += deleted
        if deleted < batch_rows:
            return PruneResult(kind, total, complete=True)
    return PruneResult(kind, total, complete=False)


async def _prune_batch(
    engine: AsyncEngine, kind: PrunableKind, cutoff: datetime, batch_rows: int
) -> int:
    async with unavailability_as_store_error(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            deleted = await connection.execute(
                text("SELECT ledger_prune_inbox(:kind, :cutoff, :rows)"),
                {"kind": kind.value, "cutoff": cutoff, "rows": batch_rows},
            )
            return int(deleted.scalar_one())
        oldest = (
            select(inbox.c.id)
            .where(prunable(kind), inbox.c.received_at < cutoff)
            .order_by(inbox.c.received_at)
            .limit(batch_rows)
        )
        result = await connection.execute(delete(inbox).where(inbox.c.id.in_(oldest)))
        return int(result.rowcount)
