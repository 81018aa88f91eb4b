"""The deliveries that wait for an operator, and operators' resolutions.

A dead letter (signed, kept with its body, unreadable) or a conflict (a notification id
delivered again with other content) needs an operator. It stops waiting when:

- a dead letter is replayed and now reads (a replay recorded as appended or duplicate);
- a conflict's version is recorded as a correction (an operator event keyed by the delivery);
- an operator resolves it: a row in ``delivery_resolutions`` with a reason, at most one per
  delivery, never changed. Nothing is deleted; the inbox row stays as it was received.

Counting is bounded like the inbox gauge's: the partial index ``ix_inbox_needs_attention``
holds only dead letters, refusals and conflicts, and each candidate costs index lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import (
    InboxOutcome,
    ReplayResult,
    delivery_replays,
    delivery_resolutions,
    events,
    inbox,
)

# A correction's idempotency key: this prefix and the delivery's id (and "#index" when the
# delivery corrects several facts, from "#0").
CORRECTION_KEY_PREFIX = "operator:correction:delivery:"
RESOLVED_BY_LENGTH_MAX = 100
REASON_LENGTH_MAX = 500
# Each kind's count stops here: the gauge then says "at least this many".
WAITING_COUNTED_MAX = 100_000

DEAD_LETTER = "dead_letter"
CONFLICT = "conflict"
# The outcomes of the rows ix_inbox_needs_attention holds (schema.NEEDS_ATTENTION).
NEEDS_ATTENTION = (InboxOutcome.CONFLICT.value, InboxOutcome.REJECTED.value)


class AlreadyResolved(Exception):
    """The delivery was resolved before; the first resolution stands."""


@dataclass(frozen=True, slots=True)
class ResolutionRow:
    delivery_id: int
    resolved_at: datetime
    resolved_by: str
    reason: str


def dead_letter() -> ColumnElement[bool]:
    return and_(inbox.c.outcome == InboxOutcome.REJECTED.value, inbox.c.body.is_not(None))


def conflict() -> ColumnElement[bool]:
    return inbox.c.outcome == InboxOutcome.CONFLICT.value


def waiting() -> ColumnElement[bool]:
    """The inbox rows that wait for an operator (see the module's docstring)."""
    resolved = exists().where(delivery_resolutions.c.delivery_id == inbox.c.id)
    now_reads = exists().where(
        delivery_replays.c.delivery_id == inbox.c.id,
        delivery_replays.c.result.in_([ReplayResult.APPENDED.value, ReplayResult.DUPLICATE.value]),
    )
    key = literal(CORRECTION_KEY_PREFIX) + cast(inbox.c.id, String)
    corrected = exists().where(events.c.idempotency_key.in_([key, key + "#0"]))
    return and_(
        # The partial index's own predicate, in literals, so that the planner reads only the
        # rows it holds (ix_inbox_needs_attention), never every accepted delivery.
        inbox.c.outcome.in_([literal_column(f"'{outcome}'") for outcome in NEEDS_ATTENTION]),
        or_(and_(dead_letter(), ~now_reads), and_(conflict(), ~corrected)),
        ~resolved,
    )


async def deliveries_waiting(
    engine: AsyncEngine, counted_max: int = WAITING_COUNTED_MAX
) -> dict[str, int]:
    """How many dead letters and conflicts wait for an operator."""
    counts: dict[str, int] = {}
    async with unavailability_as_store_error(), engine.connect() as connection:
        for kind, condition in ((DEAD_LETTER, dead_letter()), (CONFLICT, conflict())):
            capped = select(inbox.c.id).where(condition, waiting()).limit(counted_max).subquery()
            counted = await connection.execute(select(func.count()).select_from(capped))
            counts[kind] = int(counted.scalar_one())
    return counts


@dataclass(frozen=True, slots=True)
class WaitingDelivery:
    delivery_id: int
    kind: str  # DEAD_LETTER or CONFLICT
    received_at: datetime
    reason: str | None
    notification_id: str | None
    body: bytes | None


def resolution_row(values: Any) -> ResolutionRow:
    return ResolutionRow(values.delivery_id, values.resolved_at, values.resolved_by, values.reason)


class SqlDeliveryResolutions:
    """Records resolutions; the delivery log reads them beside each delivery."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def is_waiting(self, delivery_id: int) -> bool:
        query = select(inbox.c.id).where(inbox.c.id == delivery_id, waiting())
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def record(self, resolution: ResolutionRow) -> None:
        """``AlreadyResolved`` when the delivery has a resolution already."""
        statement = delivery_resolutions.insert().values(
            delivery_id=resolution.delivery_id,
            resolved_at=resolution.resolved_at,
            resolved_by=resolution.resolved_by[:RESOLVED_BY_LENGTH_MAX],
            reason=resolution.reason[:REASON_LENGTH_MAX],
        )
        try:
            async with unavailability_as_store_error(), self._engine.begin() as connection:
                await connection.execute(statement)
        except IntegrityError as error:
            raise AlreadyResolved(resolution.delivery_id) from error
