"""The deliveries a digest has not told of yet, and the record that one did.

A delivery that waits for an operator is named in the digests until a receiver acknowledges
one that names it; then it gets its row in ``delivery_notices`` and is never named again.
The rows are found through the partial index of the deliveries that need attention, each
checked against the notices by key, so the cost follows the queue, not the inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import is_postgresql
from service.store.delivery_queue import CONFLICT, DEAD_LETTER, WAITING_COUNTED_MAX, waiting
from service.store.errors import unavailability_as_store_error
from service.store.schema import InboxOutcome, delivery_notices, inbox


@dataclass(frozen=True, slots=True)
class WaitingDelivery:
    delivery_id: int
    kind: str  # DEAD_LETTER or CONFLICT
    received_at: datetime
    reason: str | None
    notification_id: str | None
    body: bytes | None


def _untold() -> ColumnElement[bool]:
    return ~exists().where(delivery_notices.c.delivery_id == inbox.c.id)


async def untold_waiting(engine: AsyncEngine, limit: int) -> list[WaitingDelivery]:
    """The waiting deliveries no acknowledged digest named yet, oldest first, at most
    ``limit``."""
    query = (
        select(
            inbox.c.id,
            inbox.c.outcome,
            inbox.c.received_at,
            inbox.c.reason,
            inbox.c.notification_id,
            inbox.c.body,
        )
        .where(waiting(), _untold())
        .order_by(inbox.c.id)
        .limit(limit)
    )
    async with unavailability_as_store_error(), engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        WaitingDelivery(
            row.id,
            CONFLICT if row.outcome == InboxOutcome.CONFLICT.value else DEAD_LETTER,
            row.received_at,
            row.reason,
            row.notification_id,
            None if row.body is None else bytes(row.body),
        )
        for row in rows
    ]


async def untold_count(engine: AsyncEngine, counted_max: int = WAITING_COUNTED_MAX) -> int:
    """How many waiting deliveries no acknowledged digest named yet (at most ``counted_max``)."""
    capped = select(inbox.c.id).where(waiting(), _untold()).limit(counted_max).subquery()
    async with unavailability_as_store_error(), engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(capped))).scalar_one()
        )


async def record_notices(
    engine: AsyncEngine, delivery_ids: Sequence[int], message_id: str, notified_at: datetime
) -> None:
    """The deliveries an acknowledged digest named; one already recorded (another replica's
    digest, acknowledged meanwhile) stays as it was."""
    if not delivery_ids:
        return
    dialect_insert = postgresql.insert if is_postgresql(engine) else sqlite.insert
    rows = [
        {"delivery_id": delivery_id, "notified_at": notified_at, "message_id": message_id}
        for delivery_id in delivery_ids
    ]
    statement = dialect_insert(delivery_notices).values(rows).on_conflict_do_nothing()
    async with unavailability_as_store_error(), engine.begin() as connection:
        await connection.execute(statement)
