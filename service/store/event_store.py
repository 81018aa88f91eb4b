"""The append-only event store and the inbox of deliveries, on SQLite and PostgreSQL.

Gap-free reading on PostgreSQL: positions come from a sequence, taken before commit, so a
reader that follows "position > checkpoint" could pass over a position whose transaction
commits late. Every append therefore holds a *shared* transaction-scoped advisory lock, and a
reader fixes its horizon under the *exclusive* form of the same lock: once it holds it, no
append is in flight, so every position up to the current maximum is final (committed or
rolled back) and any later append gets a higher one. Appends still run concurrently with
each other; they wait only for the brief moment a reader takes its horizon.
On SQLite, BEGIN IMMEDIATE serialises writers, so committed positions never have holes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import EventSource, NewEvent, RecordedEvent
from service.store.database import is_postgresql
from service.store.errors import AppendContention, unavailability_as_store_error
from service.store.schema import InboxOutcome, events, inbox

# Any constant shared by all appenders and readers of the events table.
APPEND_LOCK_KEY = 0x1E_D6E8_0001
APPEND_ATTEMPTS_MAX = 8
HORIZON_LOCK_TIMEOUT_MILLISECONDS = 5000
READ_BATCH_SIZE_MAX = 10_000


class AppendOutcome(StrEnum):
    APPENDED = "appended"
    DUPLICATE = "duplicate"  # the same fact was already recorded
    CONFLICT = "conflict"  # the same idempotency key was recorded with other content


@dataclass(frozen=True, slots=True)
class AppendResult:
    outcome: AppendOutcome
    position: int  # the new event's position, or the already recorded one's


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One delivery attempt as received. The outcome of an append is filled in by the store."""

    received_at: datetime
    outcome: InboxOutcome | None = None
    reason: str | None = None
    notification_id: str | None = None
    event_type: str | None = None
    webhook_id: str | None = None
    key_id: str | None = None
    signed_content: str | None = None
    retry_count: int | None = None
    trace_id: str | None = None
    body: bytes | None = None


def content_digest(event: NewEvent) -> str:
    canonical = json.dumps(
        {
            "stream": event.stream_id,
            "type": event.type,
            "occurredAt": event.occurred_at.astimezone(UTC).isoformat(),
            "data": event.data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def delivery_outcome(results: Sequence[AppendResult]) -> InboxOutcome:
    outcomes = {result.outcome for result in results}
    if AppendOutcome.CONFLICT in outcomes:
        return InboxOutcome.CONFLICT
    if AppendOutcome.APPENDED in outcomes:
        return InboxOutcome.ACCEPTED
    return InboxOutcome.DUPLICATE


class SqlEventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgresql = is_postgresql(engine)
        dialect_insert = postgresql.insert if self._postgresql else sqlite.insert
        self._insert_event = dialect_insert(events).on_conflict_do_nothing(
            index_elements=[events.c.idempotency_key]
        )

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]:
        """Append each fact once, with the delivery's inbox row, in one transaction.

        Two appends to one stream may pick the same version; the loser's transaction is
        retried a bounded number of times with jittered backoff.
        """
        for attempt in range(1, APPEND_ATTEMPTS_MAX + 1):
            try:
                async with unavailability_as_store_error(), self._engine.begin() as connection:
                    results = await self._append_in(connection, new_events)
                    if inbox_entry is not None:
                        await self._insert_inbox(
                            connection, inbox_entry, delivery_outcome(results), results
                        )
                    return results
            except IntegrityError as error:
                if not _is_version_collision(error) or attempt == APPEND_ATTEMPTS_MAX:
                    if _is_version_collision(error):
                        raise AppendContention(
                            f"stream version collided {attempt} times"
                        ) from error
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _append_in(
        self, connection: AsyncConnection, new_events: Sequence[NewEvent]
    ) -> list[AppendResult]:
        if self._postgresql:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": APPEND_LOCK_KEY}
            )
        recorded_at = datetime.now(UTC)
        results = []
        for event in new_events:
            digest = content_digest(event)
            next_version = (
                select(func.coalesce(func.max(events.c.version), 0) + 1)
                .where(events.c.stream_id == event.stream_id)
                .scalar_subquery()
            )
            inserted = await connection.execute(
                self._insert_event.values(
                    stream_id=event.stream_id,
                    version=next_version,
                    type=event.type,
                    schema_version=event.schema_version,
                    occurred_at=event.occurred_at,
                    recorded_at=recorded_at,
                    source=event.source.value,
                    idempotency_key=event.idempotency_key,
                    content_digest=digest,
                    data=dict(event.data),
                ).returning(events.c.position)
            )
            position = inserted.scalar_one_or_none()
            if position is not None:
                results.append(AppendResult(AppendOutcome.APPENDED, position))
                continue
            existing = (
                await connection.execute(
                    select(events.c.position, events.c.content_digest).where(
                        events.c.idempotency_key == event.idempotency_key
                    )
                )
            ).one()
            outcome = (
                AppendOutcome.DUPLICATE
                if existing.content_digest == digest
                else AppendOutcome.CONFLICT
            )
            results.append(AppendResult(outcome, existing.position))
        return results

    async def record_inbox(self, entry: InboxEntry) -> None:
        """Record a delivery that produced no append (rejected, ignored, dead letter)."""
        if entry.outcome is None:
            raise ValueError("an inbox entry recorded on its own needs an outcome")
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await self._insert_inbox(connection, entry, entry.outcome, ())

    async def _insert_inbox(
        self,
        connection: AsyncConnection,
        entry: InboxEntry,
        outcome: InboxOutcome,
        results: Sequence[AppendResult],
    ) -> None:
        await connection.execute(
            inbox.insert().values(
                received_at=entry.received_at,
                outcome=outcome.value,
                reason=entry.reason[:500] if entry.reason else None,
                notification_id=entry.notification_id,
                event_type=entry.event_type,
                webhook_id=entry.webhook_id,
                key_id=entry.key_id,
                signed_content=entry.signed_content,
                retry_count=entry.retry_count,
                trace_id=entry.trace_id,
                event_position=results[0].position if results else None,
                body=entry.body,
            )
        )

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]:
        """Events after ``position`` in position order; never one that could still be preceded."""
        if not 0 < limit <= READ_BATCH_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{READ_BATCH_SIZE_MAX}")
        async with unavailability_as_store_error():
            horizon = await self._committed_horizon() if self._postgresql else None
            query = (
                select(events)
                .where(events.c.position > position)
                .order_by(events.c.position)
                .limit(limit)
            )
            if horizon is not None:
                query = query.where(events.c.position <= horizon)
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return [_recorded_event(row) for row in rows]

    async def _committed_horizon(self) -> int:
        async with self._engine.begin() as connection:
            await connection.execute(
                text(f"SET LOCAL lock_timeout = {HORIZON_LOCK_TIMEOUT_MILLISECONDS}")
            )
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY}
            )
            horizon = await connection.scalar(select(func.coalesce(func.max(events.c.position), 0)))
            return int(horizon or 0)

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(events).where(events.c.stream_id == stream_id).order_by(events.c.version)
                )
            ).all()
        return [_recorded_event(row) for row in rows]

    async def inbox_entries(self, limit: int = 100) -> list[Mapping[str, Any]]:
        """The most recent deliveries, newest first (for operators and tests)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(select(inbox).order_by(inbox.c.id.desc()).limit(limit))
            ).all()
        return [row._asdict() for row in rows]


def _is_version_collision(error: IntegrityError) -> bool:
    message = str(error.orig)
    return "uq_events_stream_id_version" in message or (
        "events.stream_id" in message and "events.version" in message
    )


def _recorded_event(row: Row[Any]) -> RecordedEvent:
    return RecordedEvent(
        position=row.position,
        stream_id=row.stream_id,
        version=row.version,
        type=row.type,
        schema_version=row.schema_version,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        source=EventSource(row.source),
        idempotency_key=row.idempotency_key,
        data=row.data,
    )
