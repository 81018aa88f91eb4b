"""How far the projection trails the event store, and how many rows the inbox holds.

Both are sampled for the metrics every few seconds on every replica, so each answer is a few
index lookups, never a scan of a table that grows without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import InboxOutcome, events, inbox, projection_checkpoints

# Each outcome's count stops here: the gauge says "at least this many" beyond it, and no
# sample reads more index entries than this per outcome.
INBOX_ROWS_COUNTED_MAX = 1_000_000

REFUSED = "refused"
DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    events: int
    seconds: float


async def projection_lag(engine: AsyncEngine, projection: str, now: datetime) -> ProjectionLag:
    async with unavailability_as_store_error(), engine.connect() as connection:
        checkpoint = (
            await connection.execute(
                select(projection_checkpoints.c.position).where(
                    projection_checkpoints.c.name == projection
                )
            )
        ).scalar_one_or_none() or 0
        head = (await connection.execute(select(func.max(events.c.position)))).scalar() or 0
        oldest_unprojected = (
            await connection.execute(
                select(events.c.recorded_at)
                .where(events.c.position > checkpoint)
                .order_by(events.c.position)
                .limit(1)
            )
        ).scalar_one_or_none()
    seconds = 0.0 if oldest_unprojected is None else (now - oldest_unprojected).total_seconds()
    return ProjectionLag(events=max(head - checkpoint, 0), seconds=max(seconds, 0.0))


def _kinds() -> dict[str, ColumnElement[bool]]:
    rejected = inbox.c.outcome == InboxOutcome.REJECTED.value
    kinds: dict[str, ColumnElement[bool]] = {
        outcome.value: inbox.c.outcome == outcome.value
        for outcome in InboxOutcome
        if outcome is not InboxOutcome.REJECTED
    }
    kinds[REFUSED] = and_(rejected, inbox.c.body.is_(None))
    kinds[DEAD_LETTER] = and_(rejected, inbox.c.body.is_not(None))
    return kinds


async def inbox_rows_by_kind(
    engine: AsyncEngine, counted_max: int = INBOX_ROWS_COUNTED_MAX
) -> dict[str, int]:
    """Rows per outcome, with rejected ones split into refusals and dead letters."""
    counts: dict[str, int] = {}
    async with unavailability_as_store_error(), engine.connect() as connection:
        for kind, condition in _kinds().items():
            capped = select(inbox.c.outcome).where(condition).limit(counted_max).subquery()
            counted = await connection.execute(select(func.count()).select_from(capped))
            counts[kind] = int(counted.scalar_one())
    return counts
