"""The workers ``serve`` runs beside the server, each as a context that yields its running
task (or None when it is switched off) and releases what it holds on leaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from service.alerting.notifier import DigestNotifier
from service.bootstrap import Ledger, process_owner
from service.configured_keys import merchant_credentials, reconciled_organizations
from service.metrics import LedgerMetrics
from service.projections.projector import InvoiceProjector
from service.settings import standard_webhooks_key
from service.store.database import is_postgresql
from service.store.notifications import appended_events_signal
from service.store.retention import PruneResult
from service.workers.backlog_sampler import sample_backlog
from service.workers.retention import RetentionPolicy, run_retention
from service.workers.runner import RunningWorker, WorkerFactory

log = structlog.get_logger("service.workers")

WorkerContext = AsyncIterator[RunningWorker | None]
# With LISTEN/NOTIFY the poll is only a safety net; SQLite has nothing else.
POLL_SECONDS_POSTGRESQL = 2.0
POLL_SECONDS_SQLITE = 0.2


class ServingWorkers:
    """What ``serve`` runs beside the server; ``projector`` is the running one, if any, for
    the readiness probe and the metrics."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.projector: InvoiceProjector | None = None

    def factories(self) -> list[WorkerFactory]:
        return [
            self._projecting,
            self._reconciling,
            self._retaining,
            self._sampling,
            self._notifying,
        ]

    @asynccontextmanager
    async def _projecting(self) -> WorkerContext:
        """Run the projector beside the server for as long as the server runs."""
        if not self._ledger.settings.projector_enabled:
            yield None
            return
        metrics = self._ledger.metrics
        projector = self.projector = self._ledger.projector()
        stop, wake = asyncio.Event(), asyncio.Event()
        async with appended_events_signal(self._ledger.engine, wake):
            task = asyncio.create_task(
                projector.run(stop, wake, projector_poll_seconds(self._ledger))
            )
            metrics.projector_up.set(1)
            task.add_done_callback(lambda done: _count_projector_stop(done, metrics))
            yield RunningWorker("projector", task, stop)

    @asynccontextmanager
    async def _reconciling(self) -> WorkerContext:
        """Run the reconciler when Cybersource credentials are configured."""
        settings = self._ledger.settings
        if merchant_credentials(settings) is None:
            log.info("reconciler.off", detail="no LEDGER_CYBERSOURCE_* credentials configured")
            yield None
            return
        async with self._ledger.reconciler_worker() as worker:
            log.info("reconciler.on", organizations=list(reconciled_organizations(settings)))
            stop = asyncio.Event()
            yield RunningWorker("reconciler", asyncio.create_task(worker.run(stop)), stop)

    @asynccontextmanager
    async def _retaining(self) -> WorkerContext:
        """Apply the inbox retention policy every ``retention_interval_seconds``."""
        settings = self._ledger.settings
        policy = RetentionPolicy.from_days(
            refused_days=settings.retention_refused_days,
            accepted_days=settings.retention_accepted_days,
        )
        if not policy.periods:
            yield None
            return
        metrics = self._ledger.metrics

        def on_pruned(result: PruneResult) -> None:
            metrics.inbox_rows_pruned.labels(result.kind.value).inc(result.rows)

        stop = asyncio.Event()
        task = asyncio.create_task(
            run_retention(
                self._ledger.engine, policy, stop, settings.retention_interval_seconds, on_pruned
            )
        )
        yield RunningWorker("retention", task, stop)

    @asynccontextmanager
    async def _sampling(self) -> WorkerContext:
        """Keep the projection-lag and inbox gauges current."""
        stop = asyncio.Event()
        task = asyncio.create_task(
            sample_backlog(
                self._ledger.engine,
                self._ledger.metrics,
                stop,
                self._ledger.settings.metrics_sample_seconds,
            )
        )
        yield RunningWorker("backlog_gauges", task, stop)

    @asynccontextmanager
    async def _notifying(self) -> WorkerContext:
        """Post digests of what waits for an operator when LEDGER_NOTIFIER_URL is set."""
        settings, metrics = self._ledger.settings, self._ledger.metrics
        if settings.notifier_url is None or settings.notifier_secret is None:
            yield None
            return
        notifier = DigestNotifier(
            self._ledger.engine,
            url=settings.notifier_url,
            key=standard_webhooks_key(settings.notifier_secret.get_secret_value()),
            interval_seconds=settings.notifier_interval_seconds,
            console_url=settings.console_public_url,
            owner=process_owner("notifier"),
            on_digest=lambda outcome: metrics.notifier_digests.labels(outcome).inc(),
        )
        stop = asyncio.Event()
        yield RunningWorker("notifier", asyncio.create_task(notifier.run(stop)), stop)


def projector_poll_seconds(ledger: Ledger) -> float:
    return POLL_SECONDS_POSTGRESQL if is_postgresql(ledger.engine) else POLL_SECONDS_SQLITE


async def stop_within_grace(task: asyncio.Task[None], grace_seconds: float) -> bool:
    """Wait for a worker asked to stop; past the grace, cancel it outright. True if it
    stopped within the grace."""
    done, _ = await asyncio.wait({task}, timeout=grace_seconds)
    if not done:
        log.error("worker.stop_overdue", grace_seconds=grace_seconds)
        task.cancel()
        await asyncio.wait({task})
    elif not task.cancelled() and task.exception() is not None:
        log.error("worker.stopped_on_error", error=repr(task.exception()))
    return bool(done)


def _count_projector_stop(task: asyncio.Task[None], metrics: LedgerMetrics) -> None:
    metrics.projector_up.set(0)
    if not task.cancelled() and task.exception() is not None:
        metrics.projector_errors.inc()
