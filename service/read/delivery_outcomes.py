"""Deliveries counted by outcome over a time window, for the console's outcome chart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import InboxOutcome, inbox


class DeliveryOutcomes:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def counts(self, received_from: datetime | None) -> dict[str, int]:
        """Deliveries per outcome received since ``received_from`` (all when None). Every
        outcome is present, zero included, so that a chart shows what did not happen too."""
        query = select(inbox.c.outcome, func.count()).group_by(inbox.c.outcome)
        if received_from is not None:
            query = query.where(inbox.c.received_at >= received_from)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            counted = {outcome: int(n) for outcome, n in (await connection.execute(query)).all()}
        return {outcome.value: counted.get(outcome.value, 0) for outcome in InboxOutcome}
