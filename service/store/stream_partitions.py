"""Splitting the event store's streams into contiguous ranges of stream ids, for work done
in parallel: each range is read in (stream, version) order on its own, and no stream is
split between two ranges."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.schema import events


async def stream_boundaries(engine: AsyncEngine, parts: int, up_to_position: int) -> list[str]:
    """Up to ``parts - 1`` stream ids, ascending, that cut the events up to a position into
    ranges of about as many events each: range i holds the streams from boundary i - 1
    (included) to boundary i (excluded).

    Each boundary is found by skipping a share of the (stream_id, version) index, which a
    rebuild reads whole anyway; equal boundaries (one huge stream) collapse into one.
    """
    if parts <= 1:
        return []
    async with unavailability_as_store_error(), engine.connect() as connection:
        total = await connection.scalar(
            select(func.count()).select_from(events).where(events.c.position <= up_to_position)
        )
        boundaries: list[str] = []
        first: str | None = None  # a boundary at the first stream would leave a range empty
        for part in range(parts):
            stream = await connection.scalar(
                select(events.c.stream_id)
                .where(events.c.position <= up_to_position)
                .order_by(events.c.stream_id, events.c.version)
                .offset(int(total or 0) * part // parts)
                .limit(1)
            )
            if stream is None:
                break
            if first is None:
                first = stream
            elif stream > (boundaries[-1] if boundaries else first):
                boundaries.append(stream)
    return boundaries

