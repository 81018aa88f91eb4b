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

from service.bootstrap import command_ledger, rebuild_engines
from service.projections.rebuild import EVENTS_PER_PAGE, rebuild_invoices
from service.settings import load_settings


async def measure(url: str, workers: int) -> dict[str, float]:
    """The ledger's parts as `invoice-ledger rebuild` builds them (service/bootstrap.py)."""
    settings = load_settings(database_url=url)
    async with command_ledger(settings, pool_size=4) as ledger:
        store = ledger.event_store
        horizon = await store.last_position()
        started = time.perf_counter()
        events, after = 0, None
        while page := await store.read_in_stream_order(after, EVENTS_PER_PAGE, horizon):
            events += len(page)
            after = (page[-1].stream_id, page[-1].version)
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await rebuild_invoices(
            store,
            ledger.read_models,
            workers=workers,
            engines=rebuild_engines(settings),
        )
        rebuild_seconds = time.perf_counter() - started
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
