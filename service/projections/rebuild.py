"""Rebuilding the invoice read models from position zero, invisibly to readers.

The rebuild takes the projector's lease (the running projector stands by), fixes a horizon,
reads every event up to it once, in (invoice, version) order a page at a time, folds each
invoice as its events complete into the rebuild tables, then swaps the result into the live
tables with the checkpoint in one transaction. Memory holds one page per process, whatever
the store's size.

On PostgreSQL the streams are cut into contiguous ranges of stream ids and several processes
fold and write them at once (streams are independent, and folding is CPU-bound Python, so
threads would not help). SQLite takes one writer at a time: it rebuilds in this process.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import RecordedEvent
from service.projections.projector import LEASE_SECONDS_DEFAULT, project_stream
from service.store.events.base import EventStore
from service.store.stream_partitions import stream_boundaries
from service.store.views.leases import LeaseLost, LeaseRenewal
from service.store.views.read_model_store import SqlReadModelStore

EVENTS_PER_PAGE = 10_000
WORKERS_MAX = 64
# More ranges than processes, so that a process that finishes early takes another range and
# progress is reported as ranges complete.
RANGES_PER_WORKER = 4


class EngineOpener(Protocol):
    """Opens an engine on the store in whichever process calls it: the parallel rebuild sends
    it to each worker process, so it must pickle (service/bootstrap.py makes it)."""

    @property
    def is_postgresql(self) -> bool: ...

    def __call__(self) -> AsyncEngine: ...

    def event_store(self, engine: AsyncEngine) -> EventStore:
        """The event store on ``engine``, opening personal data as the service does."""
        ...


@dataclass(frozen=True, slots=True)
class StreamRange:
    """Streams from ``first`` (included; None: from the first) to ``end`` (excluded; None:
    to the last)."""

    first: str | None
    end: str | None


async def rebuild_invoices(
    event_store: EventStore,
    read_models: SqlReadModelStore,
    *,
    on_progress: Callable[[int], None] | None = None,
    events_per_page: int = EVENTS_PER_PAGE,
    workers: int = 1,
    engines: EngineOpener | None = None,
) -> int:
    """Rebuild; returns the position the rebuilt read model reflects.

    With ``workers`` > 1 and ``engines`` opening a PostgreSQL store, that many processes fold
    and write at once, each on its own engine.
    """
    if not 1 <= workers <= WORKERS_MAX:
        raise ValueError(f"workers must be within 1..{WORKERS_MAX}")
    owner = f"rebuild-{uuid.uuid4()}"
    lease = _Lease(read_models, owner)
    await lease.take_over()
    try:
        horizon = await event_store.last_position()
        await read_models.clear_rebuild_tables()
        if workers > 1 and engines is not None and engines.is_postgresql:
            ranges = await _stream_ranges(engines, workers * RANGES_PER_WORKER, horizon)
            await _rebuild_in_processes(
                engines, ranges, horizon, events_per_page, workers, lease, on_progress
            )
        else:
            await rebuild_range(
                event_store, read_models, StreamRange(None, None), horizon, events_per_page,
                lease=lease, on_progress=on_progress,
            )  # fmt: skip
        await read_models.swap_in_rebuild(owner=owner, to_position=horizon)
        return horizon
    finally:
        await read_models.release_lease(owner)


class _Lease:
    """The rebuild's lease, taken over from the projector and renewed as ``LeaseRenewal``
    does; ``keep`` says when it was lost."""

    def __init__(self, read_models: SqlReadModelStore, owner: str) -> None:
        self._renewal = LeaseRenewal(read_models, owner, LEASE_SECONDS_DEFAULT)

    async def take_over(self) -> None:
        await self._renewal.renew(take_over=True)
        self._renewal.renewed()

    async def keep(self) -> None:
        if not await self._renewal.keep():
            raise LeaseLost("another rebuild took the projection over")


async def rebuild_range(
    event_store: EventStore,
    read_models: SqlReadModelStore,
    streams: StreamRange,
    horizon: int,
    events_per_page: int,
    *,
    lease: _Lease | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Fold and write the streams of a range into the rebuild tables; returns events read."""
    unfinished: list[RecordedEvent] = []  # the last invoice of a page may go on
    read = 0

    def read_after(key: tuple[str, int] | None) -> asyncio.Task[list[RecordedEvent]]:
        return asyncio.create_task(event_store.read_in_stream_order(key, events_per_page, horizon))

    # Versions start at 1: after (first, 0) is the range's first event.
    next_page = read_after(None if streams.first is None else (streams.first, 0))
    while page := await next_page:
        ended = streams.end is not None and page[-1].stream_id >= streams.end
        if ended:
            page = [event for event in page if event.stream_id < streams.end]  # type: ignore[operator]
        after = (page[-1].stream_id, page[-1].version) if page else ("", 0)
        # The database reads while this process folds.
        next_page = read_after(after) if not ended else _nothing()
        pending = unfinished + page
        unfinished = [e for e in pending if e.stream_id == after[0]]
        await _write(read_models, pending[: len(pending) - len(unfinished)])
        read += len(page)
        if on_progress:
            on_progress(len(page))
        if lease:
            await lease.keep()
    await _write(read_models, unfinished)
    return read


def _nothing() -> asyncio.Task[list[RecordedEvent]]:
    async def empty() -> list[RecordedEvent]:
        return []

    return asyncio.create_task(empty())


async def _write(read_models: SqlReadModelStore, events: list[RecordedEvent]) -> None:
    """Fold and write invoices whose events are all here (``events`` is in stream order)."""
    projected = [
        invoice
        for stream_id, stream in itertools.groupby(events, key=lambda e: e.stream_id)
        for invoice in project_stream(stream_id, list(stream))
    ]
    await read_models.write_rebuild_batch(projected)


async def _stream_ranges(engines: EngineOpener, parts: int, horizon: int) -> list[StreamRange]:
    engine = engines()
    try:
        boundaries = await stream_boundaries(engine, parts, horizon)
    finally:
        await engine.dispose()
    edges: list[str | None] = [None, *boundaries, None]
    return [StreamRange(first, end) for first, end in itertools.pairwise(edges)]


async def _rebuild_in_processes(
    engines: EngineOpener,
    ranges: Sequence[StreamRange],
    horizon: int,
    events_per_page: int,
    workers: int,
    lease: _Lease,
    on_progress: Callable[[int], None] | None,
) -> None:
    # "spawn": a fork would copy this process's event loop and open connections.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: list[Future[int]] = [
            pool.submit(_rebuild_range_in_process, engines, streams, horizon, events_per_page)
            for streams in ranges
        ]
        waiting = {asyncio.wrap_future(future) for future in futures}
        try:
            while waiting:
                done, waiting = await asyncio.wait(
                    waiting, timeout=LEASE_SECONDS_DEFAULT / 6, return_when=asyncio.FIRST_COMPLETED
                )
                for finished in done:
                    read = finished.result()  # a range's error stops the rebuild, loudly
                    if on_progress:
                        on_progress(read)
                await lease.keep()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _rebuild_range_in_process(
    engines: EngineOpener, streams: StreamRange, horizon: int, events_per_page: int
) -> int:
    return asyncio.run(_rebuild_range_with_engine(engines, streams, horizon, events_per_page))


async def _rebuild_range_with_engine(
    engines: EngineOpener, streams: StreamRange, horizon: int, events_per_page: int
) -> int:
    engine = engines()
    try:
        return await rebuild_range(
            engines.event_store(engine),
            SqlReadModelStore(engine),
            streams,
            horizon,
            events_per_page,
        )
    finally:
        await engine.dispose()
