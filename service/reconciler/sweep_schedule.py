"""When the last full sweep completed, kept in the database so that the slow schedule holds
across restarts and replicas: a service redeployed daily still sweeps in full weekly.

The moment is a row of ``projection_checkpoints`` named ``reconciler:full-sweep`` (its
``updated_at``; the position is unused), on the database's clock like the leases beside it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import database_now
from service.store.errors import unavailability_as_store_error
from service.store.schema import projection_checkpoints

FULL_SWEEP_ROW = "reconciler:full-sweep"


class SqlSweepSchedule:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def full_sweep_due(self, interval_seconds: float) -> bool:
        """Whether no full sweep has completed within the interval (or ever)."""
        row = projection_checkpoints.c
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            now = await database_now(connection)
            completed_at: datetime | None = await connection.scalar(
                select(row.updated_at).where(row.name == FULL_SWEEP_ROW)
            )
        return completed_at is None or now - completed_at >= timedelta(seconds=interval_seconds)

    async def full_sweep_completed(self) -> None:
        row = projection_checkpoints.c
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            now = await database_now(connection)
            updated = await connection.execute(
                update(projection_checkpoints)
                .where(row.name == FULL_SWEEP_ROW)
                .values(updated_at=now)
            )
            if updated.rowcount == 0:
                await connection.execute(
                    insert(projection_checkpoints).values(
                        name=FULL_SWEEP_ROW, position=0, updated_at=now
                    )
                )
