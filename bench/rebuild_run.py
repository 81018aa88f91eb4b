"""One measured rebuild, in a process of its own so its peak memory is its own.

Prints JSON: events, the seconds a bare read of every event takes (the baseline), the
seconds the rebuild takes, and the process's peak resident memory.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from service.projections.rebuild import EVENTS_PER_PAGE, rebuild_invoices
from service.store.database import create_engine, resolve_database_url
from service.store.event_store import SqlEventStore
from service.store.read_models import SqlReadModelStore


async def measure(database_url: str) -> dict[str, float]:
    engine = create_engine(resolve_database_url(database_url), pool_size=4)
    try:
        store = SqlEventStore(engine)
        horizon = await store.last_position()
        started = time.perf_counter()
        events, after = 0, None
        while page := await store.read_in_stream_order(after, EVENTS_PER_PAGE, horizon):
            events += len(page)
            after = (page[-1].stream_id, page[-1].version)
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await rebuild_invoices(store, SqlReadModelStore(engine))
        rebuild_seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {
        "events": events,
        "read_seconds": read_seconds,
        "rebuild_seconds": rebuild_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(sys.argv[1]))))
