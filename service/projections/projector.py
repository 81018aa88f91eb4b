"""The invoice projector: events after the checkpoint, in bounded batches, into read rows.

Each batch recomputes the invoices it touches from their whole streams (up to the batch's
last position) and writes their rows with the new checkpoint in one transaction, so a crash
between batches repeats nothing and skips nothing. One projector writes at a time, across all
replicas, by holding a lease; the others stand by and take over when it lapses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from service.domain.events import RecordedEvent
from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import state_history
from service.store.errors import StoreUnavailable
from service.store.event_store import SqlEventStore
from service.store.read_models import LeaseLost, ProjectedInvoice, SqlReadModelStore

log = structlog.get_logger("service.projections")

BATCH_SIZE_DEFAULT = 1000
LEASE_SECONDS_DEFAULT = 15.0


def project_invoice(key: InvoiceKey, events: Sequence[RecordedEvent]) -> ProjectedInvoice:
    history = state_history(key.invoice_number, events, key.organization_id)
    return ProjectedInvoice(
        state=history[-1],
        history=history,
        updated_at=max(event.recorded_at for event in events),
    )


def project_stream(invoice_number: str, events: Sequence[RecordedEvent]) -> list[ProjectedInvoice]:
    """A stream holds one invoice number's facts, possibly of several organizations."""
    return [
        project_invoice(key, invoice_events)
        for key, invoice_events in sorted(invoices_in_stream(invoice_number, events).items())
    ]


@dataclass
class ProjectorHealth:
    """What /readyz and the metrics report about this process's projector."""

    leader: bool = False
    position: int = 0
    error: str | None = None


class InvoiceProjector:
    def __init__(
        self,
        event_store: SqlEventStore,
        read_models: SqlReadModelStore,
        *,
        owner: str,
        batch_size: int = BATCH_SIZE_DEFAULT,
        lease_seconds: float = LEASE_SECONDS_DEFAULT,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if not 0 < batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000")
        self._events = event_store
        self._read_models = read_models
        self._owner = owner
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        self._on_batch = on_batch
        self._lease_renewed_at = 0.0
        self.health = ProjectorHealth()

    async def project_batch(self) -> int:
        """Project the next batch; returns how many events it covered (0: caught up)."""
        from_position = await self._read_models.checkpoint()
        batch = await self._events.read_after(from_position, self._batch_size)
        if not batch:
            self.health.position = from_position
            return 0
        to_position = batch[-1].position
        stream_ids = sorted({event.stream_id for event in batch})
        streams = await self._events.read_streams(stream_ids, to_position)
        projected = [
            invoice for number in stream_ids for invoice in project_stream(number, streams[number])
        ]
        await self._read_models.apply(
            projected, owner=self._owner, from_position=from_position, to_position=to_position
        )
        self.health.position = to_position
        if self._on_batch:
            self._on_batch(len(batch), to_position)
        return len(batch)

    async def release_lease(self) -> None:
        await self._read_models.release_lease(self._owner)
        self.health.leader = False

    async def take_lease(self) -> bool:
        leader = await self._read_models.acquire_lease(self._owner, self._lease_seconds)
        if leader:
            self._lease_renewed_at = time.monotonic()
        if leader != self.health.leader:
            log.info("projector.leadership", leader=leader, owner=self._owner)
        self.health.leader = leader
        return leader

    async def catch_up(self) -> int:
        """While holding the lease, project until no event is left; returns events projected."""
        projected = 0
        while await self._lease_is_held():
            try:
                count = await self.project_batch()
            except LeaseLost:
                log.info("projector.lease_lost", owner=self._owner)
                self.health.leader = False
                break
            if count == 0:
                break
            projected += count
        return projected

    async def _lease_is_held(self) -> bool:
        if (
            self.health.leader
            and time.monotonic() - self._lease_renewed_at < self._lease_seconds / 3
        ):
            return True
        return await self.take_lease()

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, poll_seconds: float) -> None:
        """Project until ``stop``; wake early on ``wake``.

        An unavailable database is waited out; any other error stops the projector, loudly.
        """
        try:
            while not stop.is_set():
                try:
                    await self.catch_up()
                except StoreUnavailable as unavailable:
                    # The database being away is no reason to give up: nothing was written,
                    # and the checkpoint says where to resume once it is back.
                    log.warning("projector.store_unavailable", error=str(unavailable))
                    self.health.leader = False
                wake.clear()
                await _wait_for_either(stop, wake, poll_seconds)
        except Exception as error:
            # A silent gap in a read model is worse than a stopped projector that alerts.
            self.health.error = f"{type(error).__name__}: {error}"
            log.exception("projector.stopped", position=self.health.position)
            raise
        finally:
            if self.health.leader:
                await self._release_quietly()

    async def _release_quietly(self) -> None:
        try:
            await self.release_lease()
        except Exception:  # the lease lapses by itself; never mask the original outcome
            log.warning("projector.lease_not_released", owner=self._owner)
            self.health.leader = False


async def _wait_for_either(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
