"""One measured rebuild, in a process of its own so its peak memory is its own.

``python -m bench.rebuild_run DATABASE_URL [--workers N]`` prints JSON: events, the seconds
a bare read of every event takes (the baseline, in this process, in the same order), the
seconds the rebuild takes, and peak resident memory: this process's, and the largest of its
worker processes'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

from service.bootstrap import RebuildEngines
from service.projections.rebuild import EVENTS_PER_PAGE, rebuild_invoices
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore


async def measure(database_url: str, workers: int) -> dict[str, float]:
    url = resolve_database_url(database_url)
    engine = create_engine(url, pool_size=4)
    try:
        store = event_store_for(engine)
        horizon = await store.last_position()
        started = time.perf_counter()
        events, after = 0, None
        while page := await store.read_in_stream_order(after, EVENTS_PER_PAGE, horizon):
            events += len(page)
            after = (page[-1].stream_id, page[-1].version)
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await rebuild_invoices(
            store, SqlReadModelStore(engine), workers=workers, engines=RebuildEngines(url)
        )
        rebuild_seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {
        "events": events,
        "workers": workers,
        "read_seconds": read_seconds,
        "rebuild_seconds": rebuild_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database_url")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(measure(arguments.database_url, arguments.workers))))
