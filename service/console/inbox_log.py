"""What the console reads of the inbox: deliveries by filter, one delivery, counts by outcome.

Read-only. Ids grow with time, so the log is paged by id, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import InboxOutcome, inbox

PAGE_SIZE_MAX = 200
# The list never carries bodies: they can be large, and only operators may see them.
_LISTED_COLUMNS = [column for column in inbox.c if column.name != "body"]


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    outcome: InboxOutcome | None = None
    event_type: str | None = None
    notification_id: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None  # exclusive


class InboxLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def deliveries(
        self, filters: DeliveryFilters, limit: int, before_id: int | None = None
    ) -> list[Mapping[str, Any]]:
        if not 0 < limit <= PAGE_SIZE_MAX:
            raise ValueError(f"limit must be within 1..{PAGE_SIZE_MAX}")
        query = select(*_LISTED_COLUMNS).where(*_conditions(filters))
        if before_id is not None:
            query = query.where(inbox.c.id < before_id)
        query = query.order_by(inbox.c.id.desc()).limit(limit)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return [row._asdict() for row in (await connection.execute(query)).all()]

    async def delivery(self, delivery_id: int) -> Mapping[str, Any] | None:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            row = (await connection.execute(select(inbox).where(inbox.c.id == delivery_id))).first()
        return None if row is None else row._asdict()

    async def outcome_counts(self, received_from: datetime | None) -> dict[str, int]:
        """Deliveries per outcome received since ``received_from`` (all when None); every
        outcome is present, zero included, so that a chart shows what did not happen too."""
        query = select(inbox.c.outcome, func.count()).group_by(inbox.c.outcome)
        if received_from is not None:
            query = query.where(inbox.c.received_at >= received_from)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            counted = {outcome: int(n) for outcome, n in (await connection.execute(query)).all()}
        return {outcome.value: counted.get(outcome.value, 0) for outcome in InboxOutcome}


def _conditions(filters: DeliveryFilters) -> Sequence[ColumnElement[bool]]:
    conditions = []
    if filters.outcome is not None:
        conditions.append(inbox.c.outcome == filters.outcome.value)
    if filters.event_type is not None:
        conditions.append(inbox.c.event_type == filters.event_type)
    if filters.notification_id is not None:
        conditions.append(inbox.c.notification_id == filters.notification_id)
    if filters.received_from is not None:
        conditions.append(inbox.c.received_at >= filters.received_from)
    if filters.received_to is not None:
        conditions.append(inbox.c.received_at < filters.received_to)
    return conditions
