"""The invoice projector: events after the checkpoint, in bounded batches, into read rows.

Each batch recomputes the invoices it touches and writes their rows with the new checkpoint
in one transaction, so a crash between batches repeats nothing and skips nothing. A stream
whose snapshot (kept in the same transaction) can take the batch's new facts is not read
again: they are folded onto it, so a long-lived invoice costs a batch what its new facts
cost. Any other stream is read whole, up to the batch's last position. One projector writes
at a time, across all replicas, by holding a lease; the others stand by and take over when it
lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from service.domain.events import RecordedEvent
from service.projections.fold_snapshots import decode_snapshot, encode_snapshot
from service.projections.stream_folds import StreamFold, continue_stream, fold_stream
from service.store.errors import StoreUnavailable
from service.store.events.base import EventStore
from service.store.views.changes import ProjectedInvoice
from service.store.views.leases import LeaseLost, LeaseRenewal
from service.store.views.read_model_store import SqlReadModelStore

log = structlog.get_logger("service.projections")

BATCH_SIZE_DEFAULT = 1000
LEASE_SECONDS_DEFAULT = 15.0
# A wait longer than this between batches would eat most of the projection lag target (1 s).
BATCH_INTERVAL_SECONDS_MAX = 0.5


def project_stream(invoice_number: str, events: Sequence[RecordedEvent]) -> list[ProjectedInvoice]:
    """A stream holds one invoice number's facts, possibly of several organizations."""
    return fold_stream(invoice_number, events, keep_snapshot=False).invoices


@dataclass
class ProjectorHealth:
    """What /readyz and the metrics report about this process's projector."""

    leader: bool = False
    position: int = 0
    error: str | None = None


class InvoiceProjector:
    def __init__(
        self,
        event_store: EventStore,
        read_models: SqlReadModelStore,
        *,
        owner: str,
        batch_size: int = BATCH_SIZE_DEFAULT,
        lease_seconds: float = LEASE_SECONDS_DEFAULT,
        batch_interval_seconds: float = 0.0,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """``batch_interval_seconds``: in ``run``, how long after the start of one catch-up
        the next may begin, however soon new events wake the projector (see ``run``)."""
        if not 0 < batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000")
        if not 0 <= batch_interval_seconds <= BATCH_INTERVAL_SECONDS_MAX:
            raise ValueError(
                f"batch_interval_seconds must be within 0..{BATCH_INTERVAL_SECONDS_MAX}"
            )
        self._events = event_store
        self._read_models = read_models
        self._owner = owner
        self._batch_size = batch_size
        self._lease = LeaseRenewal(read_models, owner, lease_seconds)
        self._on_batch = on_batch
        self._batch_interval_seconds = batch_interval_seconds
        # Where this projector's own last batch left the checkpoint, while it has held the
        # lease since: saves reading it back before every batch. A stale value writes
        # nothing (``apply`` moves the checkpoint only from the position it holds).
        self._checkpoint: int | None = None
        self.health = ProjectorHealth()

    async def project_batch(self) -> int:
        """Project the next batch; returns how many events it covered (0: caught up)."""
        try:
            return await self._project_next_batch()
        except BaseException:
            self._checkpoint = None  # whatever happened, read it back next time
            raise

    async def _project_next_batch(self) -> int:
        from_position = self._checkpoint
        if from_position is None:
            from_position = await self._read_models.checkpoint()
        batch = await self._events.read_after(from_position, self._batch_size)
        if not batch:
            self.health.position = from_position
            return 0
        to_position = batch[-1].position
        folds = await self._fold_batch(batch, from_position, to_position)
        await self._read_models.apply(
            [invoice for fold in folds.values() for invoice in fold.invoices],
            owner=self._owner,
            from_position=from_position,
            to_position=to_position,
            fold_snapshots={
                stream: encode_snapshot(fold.snapshot) if fold.snapshot else None
                for stream, fold in folds.items()
            },
        )
        self._checkpoint = to_position
        self.health.position = to_position
        if self._on_batch:
            self._on_batch(len(batch), to_position)
        return len(batch)

    async def _fold_batch(
        self, batch: Sequence[RecordedEvent], from_position: int, to_position: int
    ) -> dict[str, StreamFold]:
        """Each touched stream folded: onto its snapshot where the new facts allow it, whole
        (read again up to ``to_position``) otherwise."""
        new_events: dict[str, list[RecordedEvent]] = {}
        for event in batch:
            new_events.setdefault(event.stream_id, []).append(event)
        # A snapshot written with a checkpoint at or before this batch's start has folded every
        # fact of its stream up to it (each batch rewrites or drops the snapshots of the streams
        # it touches, a rebuild drops them all), so the batch's facts are all that is new.
        stored = await self._read_models.fold_snapshots(list(new_events), from_position)
        folds: dict[str, StreamFold] = {}
        for stream, events in new_events.items():
            snapshot = decode_snapshot(stored[stream]) if stream in stored else None
            continued = continue_stream(snapshot, events) if snapshot else None
            if continued is not None:
                folds[stream] = continued
        unfolded = sorted(stream for stream in new_events if stream not in folds)
        streams = await self._events.read_streams(unfolded, to_position)
        for stream in unfolded:
            folds[stream] = fold_stream(stream, streams[stream])
        return folds

    async def release_lease(self) -> None:
        await self._read_models.release_lease(self._owner)
        self.health.leader = False

    async def take_lease(self) -> bool:
        leader = await self._lease.renew()
        if not (leader and self.health.leader):
            self._checkpoint = None  # another writer may have moved it meanwhile
        if leader != self.health.leader:
            log.info("projector.leadership", leader=leader, owner=self._owner)
        self.health.leader = leader
        return leader

    async def catch_up(self, *, until_partial_batch: bool = False) -> int:
        """While holding the lease, project until no event is left; returns events projected.

        ``until_partial_batch``: stop after a batch smaller than the batch size instead: every
        event committed when it was read is projected, and what came since waits for the next
        catch-up (no read that finds nothing)."""
        projected = 0
        while await self._lease_is_held():
            try:
                count = await self.project_batch()
            except LeaseLost:
                log.info("projector.lease_lost", owner=self._owner)
                self.health.leader = False
                self._checkpoint = None
                break
            projected += count
            if count == 0 or (until_partial_batch and count < self._batch_size):
                break
        return projected

    async def _lease_is_held(self) -> bool:
        if self.health.leader and not self._lease.due:
            return True
        return await self.take_lease()

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, poll_seconds: float) -> None:
        """Project until ``stop``; wake early on ``wake``.

        With a ``batch_interval_seconds``, a catch-up begins no sooner than that after the
        previous one began and ends with its first batch that is not full: under a trickle of
        events, each one waking the projector, the events that arrive meanwhile make one batch
        instead of a batch each. A backlog is not held up (full batches follow one another at
        once), and ``stop`` ends the wait at once. ``wake`` is cleared before each catch-up, so
        events appended during one wake the next.

        An unavailable database is waited out; any other error stops the projector, loudly.
        """
        loop = asyncio.get_running_loop()
        began_at: float | None = None
        try:
            while not stop.is_set():
                if began_at is not None:
                    await _wait_for_stop(
                        stop, began_at + self._batch_interval_seconds - loop.time()
                    )
                    if stop.is_set():
                        break
                began_at = loop.time()
                wake.clear()
                try:
                    await self.catch_up(until_partial_batch=self._batch_interval_seconds > 0)
                except StoreUnavailable as unavailable:
                    # The database being away is no reason to give up: nothing was written,
                    # and the checkpoint says where to resume once it is back.
                    log.warning("projector.store_unavailable", error=str(unavailable))
                    self.health.leader = False
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


async def _wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
