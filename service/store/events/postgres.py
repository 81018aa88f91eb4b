"""The event store on PostgreSQL: a group of deliveries is one call to the
``ledger_append_columns`` database function (migrations/sql/ledger_append_columns.sql, loaded
by migration 0018), one round trip, one commit and at most one NOTIFY. It is the one live
append on PostgreSQL; the lock keys it takes are passed in from base.py's constants. The group
goes as one array per column, bound by the driver: no JSON document to build or parse.

Why one NOTIFY per group: PostgreSQL holds a database-wide lock from a transaction's NOTIFY
until its commit is flushed, so with one NOTIFY per delivery every append committed one at a
time, whatever the number of connections.

Gap-free reading: positions come from a sequence, taken before commit, so a reader that
follows "position > checkpoint" could pass over a position whose transaction commits late.
Every append therefore holds a *shared* transaction-scoped advisory lock, and a reader fixes
its horizon under the *exclusive* form of the same lock: once it holds it, no append is in
flight, so every position up to the current maximum is final (committed or rolled back) and
any later append gets a higher one. Appends still run concurrently with each other; they wait
only for the brief moment a reader takes its horizon. Appends to one stream are serialised by
a per-stream lock, so versions never collide. A group takes the locks of all its streams at
once, in sorted order, so that two groups cannot deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.events import RecordedEvent
from service.store.errors import (
    UNAVAILABLE_SQLSTATE_CLASSES,
    StoreUnavailable,
    unavailability_as_store_error,
)
from service.store.events.base import (
    APPEND_LOCK_KEY,
    READ_BATCH_SIZE_MAX,
    STREAM_LOCK_CLASS,
    AppendOutcome,
    AppendResult,
    Delivery,
    InboxEntry,
    SqlEventStore,
    StoreBusy,
    content_digest,
    inbox_row,
)
from service.store.events.recorded_rows import recorded_event
from service.store.schema import events

# The function's arguments after the lock keys and the time: one array per column (see
# migrations/sql/ledger_append_columns.sql for their order and meaning).
_APPEND_COLUMNS_CALL = (
    "SELECT event_outcome, stored_position FROM ledger_append_columns("
    + ", ".join(f"${number}" for number in range(1, 27))
    + ")"
)
# The inbox row's columns as the function takes them, after the delivery's index.
_INBOX_ARGUMENT_COLUMNS = (
    "received_at",
    "reason",
    "notification_id",
    "event_type",
    "webhook_id",
    "key_id",
    "signed_content",
    "retry_count",
    "trace_id",
    "body",
    "headers",
    "signed_at",
    "organization_id",
)
_EVENT_ARGUMENT_COUNT = 9
_STREAM_ORDER_COLUMNS = (
    "SELECT position, stream_id, version, type, schema_version, occurred_at, recorded_at,"
    " source, idempotency_key, data::text AS data FROM events WHERE position <= $1"
)
_FIRST_PAGE = _STREAM_ORDER_COLUMNS + " ORDER BY stream_id, version LIMIT $2"
_NEXT_PAGE = (
    _STREAM_ORDER_COLUMNS
    + " AND (stream_id, version) > ($3, $4) ORDER BY stream_id, version LIMIT $2"
)
_LOCK_NOT_AVAILABLE = "55P03"


class PostgresEventStore(SqlEventStore):
    async def _append_group_once(
        self, deliveries: Sequence[Delivery], recorded_at: datetime
    ) -> list[list[AppendResult]]:
        arguments = append_arguments(deliveries, recorded_at)
        async with self._engine.connect() as connection:
            # Straight to the driver: for this one call SQLAlchemy's execution layer costs
            # more CPU than everything else the receiver does (see bench/README.md). The pool,
            # its bounds and the invalidation of dead connections remain SQLAlchemy's.
            driver_connection = (await connection.get_raw_connection()).driver_connection
            assert driver_connection is not None, "a checked-out connection has a driver"
            try:
                answers = await driver_connection.fetch(_APPEND_COLUMNS_CALL, *arguments)
            except Exception as error:
                if not _asyncpg_unavailability(error):
                    raise
                await connection.invalidate(error)
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        results = iter(
            AppendResult(AppendOutcome(outcome), position) for outcome, position in answers
        )
        return [[next(results) for _ in delivery.events] for delivery in deliveries]

    def _connection_was_lost(self, error: StoreUnavailable) -> bool:
        cause = error.__cause__
        if cause is not None and not isinstance(cause, DBAPIError):
            return _asyncpg_unavailability(cause)
        return super()._connection_was_lost(error)

    async def _horizon(self) -> int:
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

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]:
        """Events ordered by (stream, version), after a (stream, version) key: one index scan
        over the whole store, a page at a time (for rebuilds). Straight from the driver: a
        rebuild reads every event, and SQLAlchemy's per-row result processing costs as much
        as the fold itself."""
        if not 0 < limit <= READ_BATCH_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{READ_BATCH_SIZE_MAX}")
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return await _read_in_stream_order_from_driver(connection, after, limit, up_to_position)


def append_arguments(deliveries: Sequence[Delivery], recorded_at: datetime) -> list[Any]:
    """``ledger_append_columns``'s arguments: the lock keys, the time, then one list per column
    of the group's events and one per column of its inbox rows, each row naming its delivery
    by index."""
    event_rows = [
        (
            index,
            event.stream_id,
            event.type,
            event.schema_version,
            event.occurred_at,
            event.source.value,
            event.idempotency_key,
            content_digest(event),
            json.dumps(event.data),
        )
        for index, delivery in enumerate(deliveries)
        for event in delivery.events
    ]
    inbox_rows = [
        (index, *_inbox_values(delivery.inbox_entry))
        for index, delivery in enumerate(deliveries)
        if delivery.inbox_entry is not None
    ]
    return [
        APPEND_LOCK_KEY,
        STREAM_LOCK_CLASS,
        recorded_at,
        *_columns(event_rows, _EVENT_ARGUMENT_COUNT),
        *_columns(inbox_rows, 1 + len(_INBOX_ARGUMENT_COLUMNS)),
    ]


def _inbox_values(entry: InboxEntry) -> tuple[Any, ...]:
    row = inbox_row(entry, None, None)
    if row["headers"] is not None:
        row["headers"] = json.dumps(row["headers"])
    return tuple(row[column] for column in _INBOX_ARGUMENT_COLUMNS)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column (``width`` empty lists for no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", "") or "")


def _asyncpg_unavailability(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate or "")[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    return isinstance(error, asyncpg.InterfaceError | OSError | TimeoutError)


async def _read_in_stream_order_from_driver(
    connection: AsyncConnection, after: tuple[str, int] | None, limit: int, up_to_position: int
) -> list[RecordedEvent]:
    driver_connection = (await connection.get_raw_connection()).driver_connection
    assert driver_connection is not None
    if after is None:
        records = await driver_connection.fetch(_FIRST_PAGE, up_to_position, limit)
    else:
        records = await driver_connection.fetch(
            _NEXT_PAGE, up_to_position, limit, after[0], after[1]
        )
    return [recorded_event(record) for record in records]
