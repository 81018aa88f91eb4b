"""Checkpoints and leases: which position a projection reflects, and who may write it.

One row of ``projection_checkpoints`` per projection (the invoice read models, the
reconciler's sweeps) holds both. A lease is held until it expires, reckoned on the database's
clock; its holder renews it through ``LeaseRenewal``, the one renewal rule of the projector,
the rebuild and the reconciler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import false, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.store.database import database_now, is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.schema import projection_checkpoints

INVOICES_PROJECTION = "invoices"
# A holder renews its lease once this share of it has passed: often enough that it never
# lapses while the holder works, and the holder learns soon that another took it over.
RENEWALS_PER_LEASE = 3


class LeaseLost(Exception):
    """Another projector took over this projection; this one must stop writing."""


def host_now() -> datetime:
    return datetime.now(UTC)


class SqlLeases:
    """Checkpoints and leases of the projections, in ``projection_checkpoints``."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = host_now) -> None:
        """``clock`` (the host's) dates checkpoint updates; leases use the database's clock."""
        self._engine = engine
        self._clock = clock
        self._dialect_insert = postgresql.insert if is_postgresql(engine) else sqlite.insert

    async def checkpoint(self, name: str = INVOICES_PROJECTION) -> int:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            position = await connection.scalar(
                select(projection_checkpoints.c.position).where(
                    projection_checkpoints.c.name == name
                )
            )
        return int(position or 0)

    async def acquire_lease(
        self,
        owner: str,
        lease_seconds: float,
        name: str = INVOICES_PROJECTION,
        *,
        take_over: bool = False,
    ) -> bool:
        """Take or renew the lease; True while this owner is the projection's one writer.

        ``take_over`` takes it even from a live holder (a rebuild does): that holder's next
        write is refused and it stands by until the lease is free again.
        """
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            # Expiry is reckoned on the database's clock alone: replicas whose host clocks
            # disagree would otherwise take a live lease, or keep a lapsed one, by the skew.
            now = await database_now(connection)
            await connection.execute(
                self._dialect_insert(projection_checkpoints)
                .values(name=name, position=0, updated_at=self._clock())
                .on_conflict_do_nothing(index_elements=[projection_checkpoints.c.name])
            )
            taken = await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name,
                    or_(
                        true() if take_over else false(),
                        projection_checkpoints.c.owner.is_(None),
                        projection_checkpoints.c.owner == owner,
                        projection_checkpoints.c.lease_expires_at < now,
                    ),
                )
                .values(owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
        return taken.rowcount == 1

    async def release_lease(self, owner: str, name: str = INVOICES_PROJECTION) -> None:
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name, projection_checkpoints.c.owner == owner
                )
                .values(owner=None, lease_expires_at=None)
            )

    async def move_checkpoint(
        self,
        connection: AsyncConnection,
        *,
        name: str,
        owner: str,
        to_position: int,
        from_position: int | None = None,
    ) -> None:
        """Move the checkpoint in the caller's transaction, for the lease holder only (and only
        from ``from_position`` when given); ``LeaseLost`` otherwise, so nothing is written."""
        conditions = [
            projection_checkpoints.c.name == name,
            projection_checkpoints.c.owner == owner,
        ]
        if from_position is not None:
            conditions.append(projection_checkpoints.c.position == from_position)
        moved = await connection.execute(
            update(projection_checkpoints)
            .where(*conditions)
            .values(position=to_position, updated_at=self._clock())
        )
        if moved.rowcount == 1:
            return
        if from_position is None:
            raise LeaseLost(f"projection {name!r} lease lost during the rebuild")
        raise LeaseLost(f"projection {name!r} is no longer at {from_position} for {owner}")


class LeaseRenewal:
    """One holder's lease, renewed once ``renew_every_seconds`` have passed (by default a
    third of the lease), on the host's monotonic clock.

    ``keep()`` renews when due and says whether the lease is still held; ``renew()`` renews
    now. The projector keeps it before each batch, the rebuild after each page, the
    reconciler on a timer while it works.
    """

    def __init__(
        self,
        leases: SqlLeases,
        owner: str,
        lease_seconds: float,
        name: str = INVOICES_PROJECTION,
        *,
        renew_every_seconds: float | None = None,
    ) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.renew_every_seconds = (
            lease_seconds / RENEWALS_PER_LEASE
            if renew_every_seconds is None
            else min(renew_every_seconds, lease_seconds / RENEWALS_PER_LEASE)
        )
        self._leases = leases
        self._name = name
        self._renewed_at: float | None = None

    @property
    def due(self) -> bool:
        return (
            self._renewed_at is None
            or time.monotonic() - self._renewed_at >= self.renew_every_seconds
        )

    def renewed(self) -> None:
        """The lease was just taken or renewed (by ``acquire_lease`` directly, say)."""
        self._renewed_at = time.monotonic()

    def forget(self) -> None:
        """The lease is not held: the next ``keep`` asks the database."""
        self._renewed_at = None

    async def renew(self, *, take_over: bool = False) -> bool:
        held = await self._leases.acquire_lease(
            self.owner, self.lease_seconds, self._name, take_over=take_over
        )
        if held:
            self.renewed()
        else:
            self.forget()
        return held

    async def keep(self) -> bool:
        """True while the lease is held, renewing it when due."""
        if not self.due:
            return True
        return await self.renew()
