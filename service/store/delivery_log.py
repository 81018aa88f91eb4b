"""The delivery log: the inbox read for operators, and the record of every replay.

The inbox rows are never changed: a replay is a row of its own in ``delivery_replays``, so a
delivery's history is its row (how it was received) and its replays (what became of it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import RecordedEvent
from service.store.delivery_queue import ResolutionRow, resolution_row, waiting
from service.store.errors import unavailability_as_store_error
from service.store.events.recorded_rows import recorded_event
from service.store.personal_data.data_keys import SqlDataKeys
from service.store.personal_data.sealed_facts import opened_events, sealed_payers
from service.store.schema import (
    InboxOutcome,
    ReplayResult,
    delivery_replays,
    delivery_resolutions,
    events,
    inbox,
)

PAGE_SIZE_MAX = 500
REASON_LENGTH_MAX = 500
# A delivery is at most ITEMS_PER_DELIVERY_MAX items: its keys are looked up in one query.
KEYS_PER_LOOKUP_MAX = 100_000

# Every inbox column but the body, which is read only when asked for.
_SUMMARY_COLUMNS = [column for column in inbox.c if column.name != "body"]


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    outcome: InboxOutcome | None = None
    event_type: str | None = None
    organization_id: str | None = None
    notification_id: str | None = None
    received_from: datetime | None = None  # inclusive
    received_to: datetime | None = None  # exclusive
    reason_prefix: str | None = None
    # Only the dead letters and conflicts that wait for an operator (delivery_queue.py).
    waiting: bool = False
    # The deliveries that produced (or repeated) a fact of this invoice number.
    invoice_number: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One inbox row; ``body`` only when it was asked for."""

    delivery_id: int
    received_at: datetime
    outcome: InboxOutcome
    reason: str | None
    notification_id: str | None
    event_type: str | None
    organization_id: str | None
    webhook_id: str | None
    key_id: str | None
    signed_content: str | None
    signed_at: datetime | None
    retry_count: int | None
    trace_id: str | None
    event_position: int | None
    headers: Mapping[str, str] | None
    body_bytes: int | None
    body: bytes | None = None
    # When an erasure of a payer it named removed its body (service/store/personal_data).
    body_redacted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReplayRow:
    delivery_id: int
    replayed_at: datetime
    replayed_by: str
    result: ReplayResult
    reason: str | None
    positions: tuple[int, ...]


class SqlDeliveryLog:
    def __init__(self, engine: AsyncEngine, data_keys: SqlDataKeys | None = None) -> None:
        self._engine = engine
        # Opens the personal data of the events it reads (sealed ones read as erased without).
        self._data_keys = data_keys or SqlDataKeys(engine, None)

    async def deliveries(
        self, filters: DeliveryFilters, limit: int, before_id: int | None = None
    ) -> list[DeliveryRow]:
        """Newest first; ``before_id`` continues a page (ids grow with time)."""
        if not 0 < limit <= PAGE_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{PAGE_SIZE_MAX}")
        query = _filtered(self._summary(), filters)
        if before_id is not None:
            query = query.where(inbox.c.id < before_id)
        query = query.order_by(inbox.c.id.desc()).limit(limit)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_delivery(row._mapping) for row in rows]

    async def delivery(self, delivery_id: int, *, with_body: bool) -> DeliveryRow | None:
        query = self._summary()
        if with_body:
            query = query.add_columns(inbox.c.body)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            row = (await connection.execute(query.where(inbox.c.id == delivery_id))).first()
        return None if row is None else _delivery(row._mapping)

    async def producing_deliveries(self, positions: Sequence[int]) -> dict[int, int]:
        """The delivery that produced the fact at each position (the first to carry it; a
        repeat names it too), for the positions a delivery produced; by its index."""
        if not positions:
            return {}
        query = (
            select(inbox.c.event_position, func.min(inbox.c.id))
            .where(inbox.c.event_position.in_(sorted(set(positions))))
            .group_by(inbox.c.event_position)
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {int(position): int(delivery_id) for position, delivery_id in rows}

    async def replays(self, delivery_ids: Sequence[int]) -> dict[int, list[ReplayRow]]:
        """Each delivery's replays, oldest first."""
        found: dict[int, list[ReplayRow]] = {delivery_id: [] for delivery_id in delivery_ids}
        if not delivery_ids:
            return found
        query = (
            select(delivery_replays)
            .where(delivery_replays.c.delivery_id.in_(list(delivery_ids)))
            .order_by(delivery_replays.c.id)
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            found[row.delivery_id].append(
                ReplayRow(
                    delivery_id=row.delivery_id,
                    replayed_at=row.replayed_at,
                    replayed_by=row.replayed_by,
                    result=ReplayResult(row.result),
                    reason=row.reason,
                    positions=tuple(row.positions),
                )
            )
        return found

    async def resolutions(self, delivery_ids: Sequence[int]) -> dict[int, ResolutionRow]:
        """The resolution of each delivery that has one."""
        if not delivery_ids:
            return {}
        query = select(delivery_resolutions).where(
            delivery_resolutions.c.delivery_id.in_(list(delivery_ids))
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {row.delivery_id: resolution_row(row) for row in rows}

    async def record_replay(self, replay: ReplayRow) -> None:
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await connection.execute(
                delivery_replays.insert().values(
                    delivery_id=replay.delivery_id,
                    replayed_at=replay.replayed_at,
                    replayed_by=replay.replayed_by[:100],
                    result=replay.result.value,
                    reason=replay.reason[:REASON_LENGTH_MAX] if replay.reason else None,
                    positions=list(replay.positions),
                )
            )

    async def events_keyed(self, idempotency_keys: Sequence[str]) -> list[RecordedEvent]:
        """The recorded events with these idempotency keys, in position order."""
        if not idempotency_keys:
            return []
        if len(idempotency_keys) > KEYS_PER_LOOKUP_MAX:
            raise ValueError(f"at most {KEYS_PER_LOOKUP_MAX} keys per lookup")
        query = (
            select(events)
            .where(events.c.idempotency_key.in_(list(idempotency_keys)))
            .order_by(events.c.position)
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        recorded = [recorded_event(row._mapping) for row in rows]
        keys = await self._data_keys.for_opening(sealed_payers(recorded))
        return opened_events(recorded, keys)

    @staticmethod
    def _summary() -> Select[Any]:
        return select(*_SUMMARY_COLUMNS, func.length(inbox.c.body).label("body_bytes"))


def _filtered(query: Select[Any], filters: DeliveryFilters) -> Select[Any]:
    if filters.outcome is not None:
        query = query.where(inbox.c.outcome == filters.outcome.value)
    if filters.event_type is not None:
        query = query.where(inbox.c.event_type == filters.event_type)
    if filters.organization_id is not None:
        query = query.where(inbox.c.organization_id == filters.organization_id)
    if filters.notification_id is not None:
        query = query.where(inbox.c.notification_id == filters.notification_id)
    if filters.received_from is not None:
        query = query.where(inbox.c.received_at >= filters.received_from)
    if filters.received_to is not None:
        query = query.where(inbox.c.received_at < filters.received_to)
    if filters.reason_prefix is not None:
        # A prefix, compared as text (LIKE would read "_" in "unusable_body" as a wildcard).
        prefix = filters.reason_prefix
        query = query.where(func.substr(inbox.c.reason, 1, len(prefix)) == prefix)
    if filters.waiting:
        query = query.where(waiting())
    if filters.invoice_number is not None:
        positions = select(events.c.position).where(events.c.stream_id == filters.invoice_number)
        query = query.where(inbox.c.event_position.in_(positions))
    return query


def _delivery(values: Mapping[str, Any]) -> DeliveryRow:
    return DeliveryRow(
        delivery_id=values["id"],
        received_at=values["received_at"],
        outcome=InboxOutcome(values["outcome"]),
        reason=values["reason"],
        notification_id=values["notification_id"],
        event_type=values["event_type"],
        organization_id=values["organization_id"],
        webhook_id=values["webhook_id"],
        key_id=values["key_id"],
        signed_content=values["signed_content"],
        signed_at=values["signed_at"],
        retry_count=values["retry_count"],
        trace_id=values["trace_id"],
        event_position=values["event_position"],
        headers=values["headers"],
        body_bytes=values["body_bytes"],
        body=bytes(values["body"]) if values.get("body") is not None else None,
        body_redacted_at=values["body_redacted_at"],
    )
