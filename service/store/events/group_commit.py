"""Group commit: concurrent appends gathered into one transaction.

Why: a commit, not the work before it, bounds how many deliveries a database takes per
second. On PostgreSQL each append's NOTIFY holds a database-wide lock until its commit is
flushed, so one append per transaction committed one at a time; one transaction for many
deliveries pays the round trip, the commit, the flush and the NOTIFY once for all of them.

How: each request puts its delivery on a bounded queue and waits. A writer task takes the
first delivery waiting, everything else already queued, and whatever arrives within a short
wait after it, up to ``group_size_max`` deliveries and ``group_wait_seconds``, and appends them
with ``EventStore.append_group``: one database call, one commit. Up to ``groups_in_flight_max``
writers run at once, one gathering at a time: while a group is at the database, the next one
forms and is sent on another connection, so the database is not left idle while a commit's
answer travels back and waits for the event loop. Groups in flight together are as appends
made concurrently: the store's per-stream locks order them. Every request is answered only
after the commit that holds its delivery:

- its results (appended / duplicate / conflict), exactly as a direct append would give them,
  since the store handles a group's deliveries in order, one after another;
- ``StoreUnavailable`` (503) for every delivery of the group when the database is away;
- a delivery that fails on its own (the store retries a failed group one delivery at a time)
  gets its own error, and the others their results;
- ``StoreBusy`` (503) at once when the queue is full: back-pressure, never an unbounded wait;
- on shutdown, queued deliveries are still appended within the grace; past it, whatever is
  left fails with ``StoreUnavailable``. A delivery is never acknowledged unless committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from service.domain.events import NewEvent
from service.store.errors import StoreUnavailable
from service.store.events.base import (
    AppendResult,
    Delivery,
    EventStore,
    InboxEntry,
    StoreBusy,
)

log = structlog.get_logger("service.store")

# A group's size: large enough to pay one commit for many deliveries, small enough that one
# call's JSON argument and transaction stay short (a delivery is a few kilobytes).
GROUP_SIZE_MAX = 64
# How long the writer waits for more deliveries after the first of a group. Under load the
# queue fills during the previous commit and the writer does not wait at all.
GROUP_WAIT_SECONDS = 0.002
# Deliveries waiting for the writer; past it, requests are refused with 503 at once.
QUEUE_SIZE_MAX = 4096
# Groups at the database at once. Two keep the database busy while one group's answer comes
# back; more would mostly split the load into smaller groups and more commits.
GROUPS_IN_FLIGHT_MAX = 2
# How long ``close`` lets the writers append what is already queued.
CLOSE_GRACE_SECONDS = 10.0


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    answer: asyncio.Future[list[AppendResult]]


class GroupCommitter:
    """Appends deliveries together; see the module's docstring. A writer task runs while
    deliveries wait; ``close`` stops accepting them."""

    def __init__(
        self,
        store: EventStore,
        *,
        group_size_max: int = GROUP_SIZE_MAX,
        group_wait_seconds: float = GROUP_WAIT_SECONDS,
        queue_size_max: int = QUEUE_SIZE_MAX,
        groups_in_flight_max: int = GROUPS_IN_FLIGHT_MAX,
        on_group: Callable[[int], None] | None = None,
    ) -> None:
        if group_size_max < 1 or queue_size_max < 1 or group_wait_seconds < 0:
            raise ValueError("a group holds at least one delivery and waits no negative time")
        if groups_in_flight_max < 1:
            raise ValueError("at least one group must be allowed in flight")
        self._store = store
        self._group_size_max = group_size_max
        self._group_wait_seconds = group_wait_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(queue_size_max)
        self._groups_in_flight_max = groups_in_flight_max
        self._writers: set[asyncio.Task[None]] = set()
        # One group forms at a time, so that writers do not split the waiting deliveries.
        self._gathering = asyncio.Lock()
        self._closing = False
        self._on_group = on_group

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]:
        """Append as ``EventStore.append`` does, answered after the commit of its group."""
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        pending = _Pending(
            Delivery(new_events, inbox_entry), asyncio.get_running_loop().create_future()
        )
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise StoreBusy(f"{self._queue.maxsize} deliveries already wait to be stored") from None
        if len(self._writers) < self._groups_in_flight_max:
            writer = asyncio.create_task(self._write_groups(), name="group-commit")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await pending.answer

    async def close(self, grace_seconds: float = CLOSE_GRACE_SECONDS) -> None:
        """Refuse new appends, append what is queued within the grace, fail what is left."""
        self._closing = True
        writers = list(self._writers)
        if not writers:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                # Every queued delivery is marked done once it is answered (see _append).
                await self._queue.join()
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        while not self._queue.empty():
            _fail(self._queue.get_nowait(), StoreUnavailable("the store shut down"))

    async def _write_groups(self) -> None:
        # A writer lives while there is something to write: no task outlives the last
        # request, whether or not whoever built the committer ever closes it. It leaves the
        # set of writers as it finds the queue empty, in the same step: a done callback runs
        # later, and a delivery queued in between would count it and wait for no writer.
        try:
            await self._write_while_queued()
        finally:
            writer = asyncio.current_task()
            if writer is not None:
                self._writers.discard(writer)

    async def _write_while_queued(self) -> None:
        while not self._queue.empty():
            group: list[_Pending] = []
            try:
                async with self._gathering:
                    if self._queue.empty():  # another writer took what was waiting
                        return
                    await self._gather(group)
            except asyncio.CancelledError:  # closed while gathering: nothing was written
                for pending in group:
                    _fail(pending, StoreUnavailable("the store shut down"))
                    self._queue.task_done()
                raise
            await self._append(group)

    async def _gather(self, group: list[_Pending]) -> None:
        group.append(self._queue.get_nowait())
        self._take_queued(group)
        if len(group) >= self._group_size_max or self._group_wait_seconds == 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._group_wait_seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while len(group) < self._group_size_max:
                    group.append(await self._queue.get())
                    self._take_queued(group)

    def _take_queued(self, group: list[_Pending]) -> None:
        while len(group) < self._group_size_max and not self._queue.empty():
            group.append(self._queue.get_nowait())

    async def _append(self, group: list[_Pending]) -> None:
        if self._on_group is not None:
            self._on_group(len(group))
        try:
            await self._answer(group)
        finally:
            for _ in group:
                self._queue.task_done()

    async def _answer(self, group: list[_Pending]) -> None:
        try:
            results = await self._store.append_group([pending.delivery for pending in group])
        except asyncio.CancelledError:
            # Shut down mid-commit: whether it committed is unknown, so nobody is told it did;
            # the senders retry and the append, being idempotent, finds what was stored.
            for pending in group:
                _fail(pending, StoreUnavailable("the store shut down during the append"))
            raise
        except StoreUnavailable as error:
            for pending in group:
                _fail(pending, StoreUnavailable(str(error)), cause=error)
            return
        except Exception as error:  # not isolated by the store: fail the group, keep writing
            log.error("store.group_append_failed", deliveries=len(group), exc_info=error)
            for pending in group:
                _fail(pending, error)
            return
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                _fail(pending, result)
            elif not pending.answer.done():
                pending.answer.set_result(result)


def _fail(pending: _Pending, error: Exception, cause: Exception | None = None) -> None:
    if cause is not None:
        error.__cause__ = cause
    if not pending.answer.done():
        pending.answer.set_exception(error)
