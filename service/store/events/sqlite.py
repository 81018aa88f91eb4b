"""The event store on SQLite: a group of deliveries is one BEGIN IMMEDIATE transaction, in
Python (the one live append on SQLite).

BEGIN IMMEDIATE (see database.py) serialises writers, so the version read for a stream
cannot be taken by another append before this one commits, and committed positions never
have holes: a reader needs no horizon. Deliveries of a group are appended in order in the
one transaction, so a later delivery of the group sees an earlier one's events exactly as it
would after a commit. SQLite has no NOTIFY; its readers poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import NewEvent, RecordedEvent
from service.store.errors import unavailability_as_store_error
from service.store.events.base import (
    HORIZON_LOCK_TIMEOUT_MILLISECONDS,
    READ_BATCH_SIZE_MAX,
    AppendOutcome,
    AppendResult,
    Delivery,
    SqlEventStore,
    content_digest,
    delivery_outcome,
    insert_inbox,
)
from service.store.events.recorded_rows import recorded_event
from service.store.schema import events


class SqliteEventStore(SqlEventStore):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        horizon_lock_timeout_milliseconds: int = HORIZON_LOCK_TIMEOUT_MILLISECONDS,
    ) -> None:
        super().__init__(
            engine, horizon_lock_timeout_milliseconds=horizon_lock_timeout_milliseconds
        )
        self._insert_event = (
            sqlite.insert(events)
            .on_conflict_do_nothing(index_elements=[events.c.idempotency_key])
            .returning(events.c.position)
        )

    async def _append_group_once(
        self, deliveries: Sequence[Delivery], recorded_at: datetime
    ) -> list[list[AppendResult]]:
        group_results: list[list[AppendResult]] = []
        async with self._engine.begin() as connection:
            for delivery in deliveries:
                results = [
                    await self._append_one(connection, event, recorded_at)
                    for event in delivery.events
                ]
                if delivery.inbox_entry is not None:
                    await insert_inbox(
                        connection, delivery.inbox_entry, delivery_outcome(results), results
                    )
                group_results.append(results)
        return group_results

    async def _append_one(
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

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]:
        """Events ordered by (stream, version), after a (stream, version) key: one index scan
        over the whole store, a page at a time (for rebuilds)."""
        if not 0 < limit <= READ_BATCH_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{READ_BATCH_SIZE_MAX}")
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            query = select(events).where(events.c.position <= up_to_position)
            if after is not None:
                query = query.where(tuple_(events.c.stream_id, events.c.version) > tuple_(*after))
            query = query.order_by(events.c.stream_id, events.c.version).limit(limit)
            rows = (await connection.execute(query)).all()
            return [recorded_event(row._mapping) for row in rows]
