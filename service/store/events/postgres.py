"""The event store on PostgreSQL: a group of deliveries is one call to the
``ledger_append_group`` database function (migrations/sql/ledger_append_group_lock_keys.sql,
loaded by migration 0014), one round trip, one commit and at most one NOTIFY. It is the one
live append on PostgreSQL; the lock keys it takes are passed in from base.py's constants.

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

import base64
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
    SqlEventStore,
    StoreBusy,
    content_digest,
    inbox_row,
    recorded_event,
)
from service.store.schema import events

_APPEND_GROUP_CALL = "SELECT ledger_append_group($1::jsonb, $2::bigint, $3::integer)::text"
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
        argument = json.dumps([delivery_document(delivery, recorded_at) for delivery in deliveries])
        async with self._engine.connect() as connection:
            # Straight to the driver: for this one call SQLAlchemy's execution layer costs
            # more CPU than everything else the receiver does (see bench/README.md). The pool,
            # its bounds and the invalidation of dead connections remain SQLAlchemy's.
            driver_connection = (await connection.get_raw_connection()).driver_connection
            assert driver_connection is not None, "a checked-out connection has a driver"
            try:
                document = await driver_connection.fetchval(
                    _APPEND_GROUP_CALL, argument, APPEND_LOCK_KEY, STREAM_LOCK_CLASS
                )
            except Exception as error:
                if not _asyncpg_unavailability(error):
                    raise
                await connection.invalidate(error)
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        return [
            [
                AppendResult(AppendOutcome(result["outcome"]), int(result["position"]))
                for result in delivery_results
            ]
            for delivery_results in json.loads(document)
        ]

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


def delivery_document(delivery: Delivery, recorded_at: datetime) -> dict[str, Any]:
    """One element of ``ledger_append_group``'s argument."""
    return {
        "events": [
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
            for event in delivery.events
        ],
        "delivery": None if delivery.inbox_entry is None else _inbox_document(delivery),
    }


def _inbox_document(delivery: Delivery) -> dict[str, Any]:
    """The inbox row as JSON: the function computes the outcome and the event position."""
    assert delivery.inbox_entry is not None
    row = inbox_row(delivery.inbox_entry, None, None)
    body = row.pop("body")
    row["body_base64"] = base64.b64encode(body).decode() if body is not None else None
    for column in ("received_at", "signed_at"):
        if row[column] is not None:
            row[column] = row[column].isoformat()
    return row


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
