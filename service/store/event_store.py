"""The append-only event store and the inbox of deliveries, on SQLite and PostgreSQL.

Gap-free reading on PostgreSQL: positions come from a sequence, taken before commit, so a
reader that follows "position > checkpoint" could pass over a position whose transaction
commits late. Every append therefore holds a *shared* transaction-scoped advisory lock, and a
reader fixes its horizon under the *exclusive* form of the same lock: once it holds it, no
append is in flight, so every position up to the current maximum is final (committed or
rolled back) and any later append gets a higher one. Appends still run concurrently with
each other; they wait only for the brief moment a reader takes its horizon. Appends to one
stream are serialised by a per-stream lock, so versions never collide. All of this runs in
the ``ledger_append`` database function: one round trip and one commit per delivery.
On SQLite, BEGIN IMMEDIATE serialises writers, so committed positions never have holes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import Row, func, select, text, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import EventSource, NewEvent, RecordedEvent
from service.store.database import is_postgresql
from service.store.errors import StoreUnavailable, unavailability_as_store_error
from service.store.schema import InboxOutcome, events, inbox

# Shared by every appender and reader of the events table; the ledger_append function in
# the first migration uses the same value (132454547457).
APPEND_LOCK_KEY = 0x1E_D6E8_0001
RECONNECT_ATTEMPTS_MAX = 2
HORIZON_LOCK_TIMEOUT_MILLISECONDS = 5000
READ_BATCH_SIZE_MAX = 10_000
_APPEND_CALL = "SELECT ledger_append($1::jsonb, $2::jsonb)::text"
_STREAM_ORDER_COLUMNS = (
    "SELECT position, stream_id, version, type, schema_version, occurred_at, recorded_at,"
    " source, idempotency_key, data::text AS data FROM events WHERE position <= $1"
)
_FIRST_PAGE = _STREAM_ORDER_COLUMNS + " ORDER BY stream_id, version LIMIT $2"
_NEXT_PAGE = (
    _STREAM_ORDER_COLUMNS
    + " AND (stream_id, version) > ($3, $4) ORDER BY stream_id, version LIMIT $2"
)
# SQLSTATE classes meaning "the server is not there for you right now": connection
# exception, insufficient resources, operator intervention (shutdown, recovery).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


_LOCK_NOT_AVAILABLE = "55P03"


class StoreBusy(StoreUnavailable):
    """The store answers but is held up (a lock was not granted in time); try again later."""


def _sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", "") or "")


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
    # What reading the body again needs (see service/webhooks/reading.py): the delivery's
    # kept headers and its verified signature's time.
    headers: Mapping[str, str] | None = None
    signed_at: datetime | None = None
    organization_id: str | None = None


def content_digest(event: NewEvent) -> str:
    content: dict[str, Any] = {"stream": event.stream_id, "type": event.type, "data": event.data}
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


class SqlEventStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        horizon_lock_timeout_milliseconds: int = HORIZON_LOCK_TIMEOUT_MILLISECONDS,
    ) -> None:
        self._engine = engine
        self._postgresql = is_postgresql(engine)
        self._horizon_lock_timeout_milliseconds = int(horizon_lock_timeout_milliseconds)
        self._insert_event = (
            sqlite.insert(events)
            .on_conflict_do_nothing(index_elements=[events.c.idempotency_key])
            .returning(events.c.position)
        )

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]:
        """Append each fact once, with the delivery's inbox row, in one transaction."""
        recorded_at = datetime.now(UTC)
        # An append is idempotent, so one found on a dead pooled connection (the database
        # restarted, say) can safely run again on a fresh one.
        for attempt in range(1, RECONNECT_ATTEMPTS_MAX + 1):
            try:
                async with unavailability_as_store_error():
                    if self._postgresql:
                        return await self._append_postgresql(new_events, inbox_entry, recorded_at)
                    return await self._append_sqlite(new_events, inbox_entry, recorded_at)
            except StoreUnavailable as error:
                if attempt == RECONNECT_ATTEMPTS_MAX or not _connection_was_lost(error):
                    raise
        raise AssertionError("unreachable: the loop returns or raises")

    async def _append_postgresql(
        self,
        new_events: Sequence[NewEvent],
        inbox_entry: InboxEntry | None,
        recorded_at: datetime,
    ) -> list[AppendResult]:
        """One round trip: the ledger_append function (see the first migration)."""
        rows = [
            {
                "stream_id": event.stream_id,
                "type": event.type,
                "schema_version": event.schema_version,
                "occurred_at": event.occurred_at.isoformat(),
                "recorded_at": recorded_at.isoformat(),
                "source": event.source.value,
                "idempotency_key": event.idempotency_key,
                "content_digest": content_digest(event),
                "data": event.data,
            }
            for event in new_events
        ]
        delivery = None if inbox_entry is None else json.dumps(_inbox_document(inbox_entry))
        async with self._engine.connect() as connection:
            # Straight to the driver: for this one call SQLAlchemy's execution layer costs
            # more CPU than everything else the receiver does (see bench/README.md). The pool,
            # its bounds and the invalidation of dead connections remain SQLAlchemy's.
            driver_connection = (await connection.get_raw_connection()).driver_connection
            assert driver_connection is not None, "a checked-out connection has a driver"
            try:
                document = await driver_connection.fetchval(
                    _APPEND_CALL, json.dumps(rows), delivery
                )
            except Exception as error:
                if not _asyncpg_unavailability(error):
                    raise
                await connection.invalidate(error)
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        return [
            AppendResult(AppendOutcome(result["outcome"]), int(result["position"]))
            for result in json.loads(document)
        ]

    async def _append_sqlite(
        self,
        new_events: Sequence[NewEvent],
        inbox_entry: InboxEntry | None,
        recorded_at: datetime,
    ) -> list[AppendResult]:
        # BEGIN IMMEDIATE (see database.py) serialises writers, so the version read here
        # cannot be taken by another append before this one commits.
        async with self._engine.begin() as connection:
            results = [
                await self._append_one_sqlite(connection, event, recorded_at)
                for event in new_events
            ]
            if inbox_entry is not None:
                await self._insert_inbox(
                    connection, inbox_entry, delivery_outcome(results), results
                )
            return results

    async def _append_one_sqlite(
        self, connection: AsyncConnection, event: NewEvent, recorded_at: datetime
    ) -> AppendResult:
        digest = content_digest(event)
        next_version = (
            select(func.coalesce(func.max(events.c.version), 0) + 1)
            .where(events.c.stream_id == event.stream_id)
            .scalar_subquery()
        )
        position = await connection.scalar(
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
            )
        )
        if position is not None:
            return AppendResult(AppendOutcome.APPENDED, position)
        existing = (
            await connection.execute(
                select(events.c.position, events.c.content_digest).where(
                    events.c.idempotency_key == event.idempotency_key
                )
            )
        ).one()
        same = existing.content_digest == digest
        outcome = AppendOutcome.DUPLICATE if same else AppendOutcome.CONFLICT
        return AppendResult(outcome, existing.position)

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
                headers=dict(entry.headers) if entry.headers is not None else None,
                signed_at=entry.signed_at,
                organization_id=entry.organization_id,
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
                text(f"SET LOCAL lock_timeout = {self._horizon_lock_timeout_milliseconds}")
            )
            try:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY}
                )
            except DBAPIError as error:
                if _sqlstate(error) != _LOCK_NOT_AVAILABLE:
                    raise
                # An append held up (a table lock, a huge delivery) is no fault of the
                # reader's: it is busy, not broken, and the caller tries again later.
                raise StoreBusy(
                    f"appends held the horizon lock over {self._horizon_lock_timeout_milliseconds}"
                    " ms"
                ) from error
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
            streams[row.stream_id].append(_recorded_event(row))
        return streams

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]:
        """Events ordered by (stream, version), after a (stream, version) key: one index scan
        over the whole store, a page at a time (for rebuilds)."""
        if not 0 < limit <= READ_BATCH_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{READ_BATCH_SIZE_MAX}")
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            if self._postgresql:
                return await _read_in_stream_order_from_driver(
                    connection, after, limit, up_to_position
                )
            query = select(events).where(events.c.position <= up_to_position)
            if after is not None:
                query = query.where(tuple_(events.c.stream_id, events.c.version) > tuple_(*after))
            query = query.order_by(events.c.stream_id, events.c.version).limit(limit)
            return [_recorded_event(row) for row in (await connection.execute(query)).all()]

    async def last_position(self) -> int:
        """The highest position that no append still in flight can precede."""
        async with unavailability_as_store_error():
            if self._postgresql:
                return await self._committed_horizon()
            async with self._engine.connect() as connection:
                return int(
                    await connection.scalar(select(func.coalesce(func.max(events.c.position), 0)))
                    or 0
                )

    async def highest_position(self) -> int:
        """The highest committed position (0 for none); unlike ``last_position`` it waits for
        no append in flight, since it bounds what a client can know rather than what to read."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            highest = await connection.scalar(select(func.coalesce(func.max(events.c.position), 0)))
            return int(highest or 0)

    async def inbox_entries(self, limit: int = 100) -> list[Mapping[str, Any]]:
        """The most recent deliveries, newest first (for operators and tests)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (
                await connection.execute(select(inbox).order_by(inbox.c.id.desc()).limit(limit))
            ).all()
        return [row._asdict() for row in rows]


def _connection_was_lost(error: StoreUnavailable) -> bool:
    cause = error.__cause__
    if isinstance(cause, DBAPIError):
        return cause.connection_invalidated
    return cause is not None and _asyncpg_unavailability(cause)


def _asyncpg_unavailability(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate or "")[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    return isinstance(error, asyncpg.InterfaceError | OSError | TimeoutError)


def _inbox_document(entry: InboxEntry) -> dict[str, Any]:
    return {
        "received_at": entry.received_at.isoformat(),
        "reason": entry.reason[:500] if entry.reason else None,
        "notification_id": entry.notification_id,
        "event_type": entry.event_type,
        "webhook_id": entry.webhook_id,
        "key_id": entry.key_id,
        "signed_content": entry.signed_content,
        "retry_count": entry.retry_count,
        "trace_id": entry.trace_id,
        "body_base64": base64.b64encode(entry.body).decode() if entry.body is not None else None,
        "headers": dict(entry.headers) if entry.headers is not None else None,
        "signed_at": entry.signed_at.isoformat() if entry.signed_at is not None else None,
        "organization_id": entry.organization_id,
    }


async def _read_in_stream_order_from_driver(
    connection: AsyncConnection, after: tuple[str, int] | None, limit: int, up_to_position: int
) -> list[RecordedEvent]:
    """A rebuild reads every event: straight from the driver, without SQLAlchemy's per-row
    result processing, which costs as much as the fold itself."""
    driver_connection = (await connection.get_raw_connection()).driver_connection
    assert driver_connection is not None
    if after is None:
        records = await driver_connection.fetch(_FIRST_PAGE, up_to_position, limit)
    else:
        records = await driver_connection.fetch(
            _NEXT_PAGE, up_to_position, limit, after[0], after[1]
        )
    return [_recorded_event_from_driver(record) for record in records]


def _recorded_event_from_driver(record: Any) -> RecordedEvent:
    return _recorded_event_from(record, json.loads(record["data"]))


def _recorded_event(row: Row[Any]) -> RecordedEvent:
    return _recorded_event_from(row._mapping, row.data)


def _recorded_event_from(values: Any, data: Mapping[str, Any]) -> RecordedEvent:
    """From a SQLAlchemy row mapping or a driver record: both index by column name."""
    return RecordedEvent(
        position=values["position"],
        stream_id=values["stream_id"],
        version=values["version"],
        type=values["type"],
        schema_version=values["schema_version"],
        occurred_at=values["occurred_at"],
        recorded_at=values["recorded_at"],
        source=EventSource(values["source"]),
        idempotency_key=values["idempotency_key"],
        data=data,
    )
