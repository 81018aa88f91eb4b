"""The event store's interface and what both engines share: the append-only event table,
the inbox of deliveries, and the types an append answers with.

One class per engine implements this interface (as a recorder per engine in eventsourcing),
each owning its SQL: ``PostgresEventStore`` (postgres.py) appends through the
``ledger_append_columns`` database function, ``SqliteEventStore`` (sqlite.py) in Python under
BEGIN IMMEDIATE. Both import this module; this module imports neither. ``event_store_for``
(for_engine.py) picks one by the engine's dialect; the contract suite
(tests/integration/test_event_store_contract.py) runs against both.

Every append is a *group* of deliveries written in one transaction: the group committer
(group_commit.py) gathers concurrent webhook deliveries into one, and a direct ``append``
(replay, corrections, reconciler) is a group of one, through the same code. Inside a group,
deliveries are handled in order, exactly as they would be one call after another.

A group that fails for a reason other than the database being away (one delivery whose
insert raises, say) is retried one delivery at a time, so that one bad delivery fails alone
and the others are stored; a database that is away fails every delivery of the group with
``StoreUnavailable``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import NewEvent, RecordedEvent
from service.store.errors import StoreUnavailable, is_unavailability, unavailability_as_store_error
from service.store.events.recorded_rows import recorded_event
from service.store.schema import InboxOutcome, events, inbox

# The advisory locks of appends on PostgreSQL, named once here: appends take APPEND_LOCK_KEY
# shared and a reader takes it exclusively to fix its horizon; appends to one stream are
# serialised by the two-key lock (STREAM_LOCK_CLASS, hashtext(stream id)). The service passes
# both to ledger_append_columns on every call, so no SQL text holds its own copy.
APPEND_LOCK_KEY = 0x1E_D6E8_0001
STREAM_LOCK_CLASS = 0x1ED6
RECONNECT_ATTEMPTS_MAX = 2
HORIZON_LOCK_TIMEOUT_MILLISECONDS = 5000
READ_BATCH_SIZE_MAX = 10_000
INBOX_REASON_LENGTH_MAX = 500


class StoreBusy(StoreUnavailable):
    """The store answers but is held up (a lock was not granted in time); try again later."""


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
    # What reading the body again needs (see service/ingest/reading.py): the delivery's
    # kept headers and its verified signature's time.
    headers: Mapping[str, str] | None = None
    signed_at: datetime | None = None
    organization_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one append stores: its facts and, for a webhook, the delivery's inbox row."""

    events: Sequence[NewEvent]
    inbox_entry: InboxEntry | None = None


# Per delivery of a group: its results, or the error that kept it from being stored.
DeliveryResult = list[AppendResult] | Exception


@dataclass(frozen=True, slots=True)
class SealedNewEvent(NewEvent):
    """A fact stored with its customer sealed (store/personal_data); its digest covers
    ``digest_data`` (keyed hashes instead), the same however often the fact is sealed."""

    digest_data: Mapping[str, Any] = field(default_factory=dict)


def content_digest(event: NewEvent) -> str:
    data = event.digest_data if isinstance(event, SealedNewEvent) else event.data
    content: dict[str, Any] = {"stream": event.stream_id, "type": event.type, "data": data}
    if event.time_is_content:
        content["occurredAt"] = event.occurred_at.astimezone(UTC).isoformat()
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def delivery_outcome(results: Sequence[AppendResult]) -> InboxOutcome:
    outcomes = {result.outcome for result in results}
    if AppendOutcome.CONFLICT in outcomes:
        return InboxOutcome.CONFLICT
    if AppendOutcome.APPENDED in outcomes:
        return InboxOutcome.ACCEPTED
    return InboxOutcome.DUPLICATE


def inbox_row(
    entry: InboxEntry, outcome: InboxOutcome | None, event_position: int | None
) -> dict[str, Any]:
    """The inbox row of a delivery, column by column: the one place Python names them (the
    PostgreSQL append takes them as arrays in the order postgres.py lists these names)."""
    return {
        "received_at": entry.received_at,
        "outcome": outcome.value if outcome is not None else None,
        "reason": entry.reason[:INBOX_REASON_LENGTH_MAX] if entry.reason else None,
        "notification_id": entry.notification_id,
        "event_type": entry.event_type,
        "webhook_id": entry.webhook_id,
        "key_id": entry.key_id,
        "signed_content": entry.signed_content,
        "retry_count": entry.retry_count,
        "trace_id": entry.trace_id,
        "event_position": event_position,
        "body": entry.body,
        "headers": dict(entry.headers) if entry.headers is not None else None,
        "signed_at": entry.signed_at,
        "organization_id": entry.organization_id,
    }


class Appender(Protocol):
    """What the receiver appends through: the store itself, or a group committer over it."""

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]: ...


class EventStore(Protocol):
    """Append facts once, keep every delivery, read events without ever skipping one.

    The interface the services use; ``event_store_for(engine)`` builds the one for an
    engine's database (an ``SqlEventStore``)."""

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]: ...

    async def append_group(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]: ...

    async def record_inbox(self, entry: InboxEntry) -> int: ...

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]: ...

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]: ...

    async def read_streams(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, list[RecordedEvent]]: ...

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]: ...

    async def last_position(self) -> int: ...

    async def highest_position(self) -> int: ...

    async def inbox_entries(self, limit: int = 100) -> list[Mapping[str, Any]]: ...


class SqlEventStore:
    """What every engine shares; an engine's class implements ``_append_group_once`` and
    ``read_in_stream_order`` (and ``_horizon`` where committed positions can have holes)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        horizon_lock_timeout_milliseconds: int = HORIZON_LOCK_TIMEOUT_MILLISECONDS,
    ) -> None:
        self._engine = engine
        self._horizon_lock_timeout_milliseconds = int(horizon_lock_timeout_milliseconds)

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]:
        """Append each fact once, with the delivery's inbox row, in one transaction."""
        [result] = await self.append_group([Delivery(new_events, inbox_entry)])
        if isinstance(result, Exception):
            raise result
        return result

    async def append_group(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
        """Append several deliveries in one transaction, in order; one result per delivery.

        Raises ``StoreUnavailable`` when the database is away (nothing of the group is
        stored). Any other failure is isolated: the group is retried one delivery at a time,
        and only the deliveries that fail alone get their error as their result.
        """
        if not deliveries:
            return []
        try:
            return list(await self._append_reconnecting(deliveries))
        except StoreUnavailable:
            raise
        except Exception as error:
            if is_unavailability(error):
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
            if len(deliveries) == 1:
                return [error]
        return [await self._append_alone(delivery) for delivery in deliveries]

    async def _append_alone(self, delivery: Delivery) -> DeliveryResult:
        try:
            [results] = await self._append_reconnecting([delivery])
        except StoreUnavailable:
            raise
        except Exception as error:
            if is_unavailability(error):
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
            return error
        return results

    async def _append_reconnecting(
        self, deliveries: Sequence[Delivery]
    ) -> list[list[AppendResult]]:
        recorded_at = datetime.now(UTC)
        # An append is idempotent, so one found on a dead pooled connection (the database
        # restarted, say) can safely run again on a fresh one.
        for attempt in range(1, RECONNECT_ATTEMPTS_MAX + 1):
            try:
                async with unavailability_as_store_error():
                    results = await self._append_group_once(deliveries, recorded_at)
                assert len(results) == len(deliveries), "one result per delivery"
                return results
            except StoreUnavailable as error:
                if attempt == RECONNECT_ATTEMPTS_MAX or not self._connection_was_lost(error):
                    raise
        raise AssertionError("unreachable: the loop returns or raises")

    async def _append_group_once(
        self, deliveries: Sequence[Delivery], recorded_at: datetime
    ) -> list[list[AppendResult]]:
        """The engine's one live append: every delivery of the group in one transaction."""
        raise NotImplementedError

    def _connection_was_lost(self, error: StoreUnavailable) -> bool:
        cause = error.__cause__
        return isinstance(cause, DBAPIError) and cause.connection_invalidated

    async def record_inbox(self, entry: InboxEntry) -> int:
        """Record a delivery that produced no append (rejected, ignored, dead letter); its
        delivery id."""
        if entry.outcome is None:
            raise ValueError("an inbox entry recorded on its own needs an outcome")
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            row = inbox_row(entry, entry.outcome, None)
            result = await connection.execute(inbox.insert().values(**row).returning(inbox.c.id))
            return int(result.scalar_one())

    async def _horizon(self) -> int | None:
        """The highest position a reader may pass, or None when every committed one is final."""
        return None

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]:
        """Events after ``position`` in position order; never one that could still be preceded."""
        if not 0 < limit <= READ_BATCH_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{READ_BATCH_SIZE_MAX}")
        async with unavailability_as_store_error():
            horizon = await self._horizon()
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
        return [recorded_event(row._mapping) for row in rows]

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(events).where(events.c.stream_id == stream_id).order_by(events.c.version)
                )
            ).all()
        return [recorded_event(row._mapping) for row in rows]

    async def read_streams(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, list[RecordedEvent]]:
        """The events of several streams, each in version order, up to a position."""
        streams: dict[str, list[RecordedEvent]] = {stream_id: [] for stream_id in stream_ids}
        if not stream_ids:
            return streams
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(events)
                    .where(
                        events.c.stream_id.in_(list(stream_ids)),
                        events.c.position <= up_to_position,
                    )
                    .order_by(events.c.stream_id, events.c.version)
                )
            ).all()
        for row in rows:
            streams[row.stream_id].append(recorded_event(row._mapping))
        return streams

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]:
        """Events ordered by (stream, version), after a (stream, version) key: one index scan
        over the whole store, a page at a time (for rebuilds)."""
        raise NotImplementedError

    async def last_position(self) -> int:
        """The highest position that no append still in flight can precede."""
        async with unavailability_as_store_error():
            horizon = await self._horizon()
            if horizon is not None:
                return horizon
            return await self._highest_position()

    async def highest_position(self) -> int:
        """The highest committed position (0 for none); unlike ``last_position`` it waits for
        no append in flight, since it bounds what a client can know rather than what to read."""
        async with unavailability_as_store_error():
            return await self._highest_position()

    async def _highest_position(self) -> int:
        async with self._engine.connect() as connection:
            highest = await connection.scalar(select(func.coalesce(func.max(events.c.position), 0)))
            return int(highest or 0)

    async def inbox_entries(self, limit: int = 100) -> list[Mapping[str, Any]]:
        """The most recent deliveries, newest first (for operators and tests)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(select(inbox).order_by(inbox.c.id.desc()).limit(limit))
            ).all()
        return [row._asdict() for row in rows]


async def insert_inbox(
    connection: AsyncConnection,
    entry: InboxEntry,
    outcome: InboxOutcome,
    results: Sequence[AppendResult],
) -> None:
    position = results[0].position if results else None
    await connection.execute(inbox.insert().values(**inbox_row(entry, outcome, position)))
