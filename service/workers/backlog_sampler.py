"""Samples the projection lag and the inbox's rows into their gauges, periodically.

A scrape reads the last sample rather than querying the database, so scraping stays cheap
and a slow database never makes /metrics time out.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from service.metrics import LedgerMetrics
from service.store.backlog import inbox_rows_by_kind, projection_lag
from service.store.delivery_queue import deliveries_waiting
from service.store.errors import StoreUnavailable
from service.store.views.leases import INVOICES_PROJECTION

log = structlog.get_logger("service.workers.backlog_sampler")

LAG_SAMPLE_SECONDS = 5.0
# Counting the inbox reads up to a million index entries per outcome: less often.
INBOX_SAMPLES_EVERY = 12


async def sample_backlog(
    engine: AsyncEngine,
    metrics: LedgerMetrics,
    stop: asyncio.Event,
    sample_seconds: float = LAG_SAMPLE_SECONDS,
) -> None:
    samples = 0
    failing: str | None = None
    while not stop.is_set():
        try:
            lag = await projection_lag(engine, INVOICES_PROJECTION, datetime.now(UTC))
            metrics.projection_lag_events.set(lag.events)
            metrics.projection_lag_seconds.set(lag.seconds)
            if samples % INBOX_SAMPLES_EVERY == 0:
                for kind, rows in (await inbox_rows_by_kind(engine)).items():
                    metrics.inbox_rows.labels(kind).set(rows)
                for kind, count in (await deliveries_waiting(engine)).items():
                    metrics.deliveries_waiting.labels(kind).set(count)
            failing = None
        except StoreUnavailable:
            pass  # /readyz and the webhook metrics say so; the gauges keep their last value
        except Exception as error:
            # An unmigrated schema fails every sample: said once, not every few seconds.
            if type(error).__name__ != failing:
                failing = type(error).__name__
                log.exception("backlog_sampler.failed")
        samples += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), sample_seconds)
