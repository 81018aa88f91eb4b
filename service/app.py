"""Wiring: builds the engine, stores, verifier, projector and routes from settings.

Nothing else in the service builds engines or workers.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from service.api.auth import ApiAuthorizer, AuthSurface
from service.api.contract import ApiRoute, declared_operations, openapi_document
from service.api.deliveries import DeliveryApi
from service.api.errors import ApiError
from service.api.failure_throttle import FailureThrottle
from service.api.request_metrics import RequestMetrics
from service.api.routes import QueryApi
from service.api.webhook_operation import WEBHOOK_OPERATIONS
from service.background import BackgroundWorkers, RunningWorker
from service.backlog_sampler import sample_backlog
from service.console.delivery_outcomes import DeliveryOutcomes
from service.console.routes import SECURITY_HEADERS, Console, ConsoleSources
from service.cybersource.webhook_signature import WebhookVerifier
from service.http_server import WORKERS_SHARE_OF_GRACE
from service.ingest.corrections import DeliveryCorrections
from service.ingest.receiver import WebhookReceiver
from service.ingest.replay import DeliveryReplayer
from service.metrics import LedgerMetrics
from service.projections.projector import InvoiceProjector
from service.projections.queries import InvoiceQueries
from service.reconciler.answers import CallFailure, CallOutcome
from service.reconciler.client import CybersourceClient
from service.reconciler.ledger_view import SqlLedgerView
from service.reconciler.outcomes import ReconcilerFailure, SweepSummary, TransactionLookup
from service.reconciler.reconciler import Reconciler
from service.reconciler.sweep_schedule import SqlSweepSchedule
from service.reconciler.transport import ClientLimits
from service.reconciler.worker import ReconcilerWorker
from service.retention_policy import RetentionPolicy, run_retention
from service.settings import Settings
from service.store.console_sessions import SqlConsoleSessions
from service.store.database import create_engine, is_postgresql
from service.store.delivery_log import SqlDeliveryLog
from service.store.errors import StoreUnavailable, is_unavailability, unavailability_reason
from service.store.event_store import EventStore
from service.store.event_store_for import event_store_for
from service.store.group_commit import GroupCommitter
from service.store.migrations import current_revision, head_revision
from service.store.notifications import appended_events_signal
from service.store.read_models import SqlReadModelStore
from service.store.retention import PruneResult

log = structlog.get_logger("service.app")

RETRY_AFTER_SECONDS = 60
# A delivery waits at most one SQLite busy timeout for the write lock another process holds,
# then is answered 503 so that the sender retries (its own timeout is near); a command beside
# the serving process waits longer (store/database.py).
SERVING_SQLITE_LOCK_WAIT_SECONDS = 5.0
CONSOLE_PATH = "/console"
STORE_UNAVAILABLE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<title>Ledger unavailable</title><link rel="stylesheet" href="/console/console.css">'
    '</head><body><main><h1>The ledger cannot be reached</h1>'
    '<p class="problem" role="alert">Its database is not answering. Nothing is lost: try'
    ' again in a minute; <a href="/readyz">/readyz</a> says why.</p></main></body></html>'
)
WorkerContext = AsyncIterator[RunningWorker | None]
# With LISTEN/NOTIFY the poll is only a safety net; SQLite has nothing else.
POLL_SECONDS_POSTGRESQL = 2.0
POLL_SECONDS_SQLITE = 0.2


@dataclass
class Resources:
    engine: AsyncEngine
    store: EventStore
    read_models: SqlReadModelStore
    queries: InvoiceQueries
    metrics: LedgerMetrics
    expected_revision: str | None
    projector: InvoiceProjector | None = None


def projector_owner() -> str:
    """Names this process in the projector lease, for operators reading it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def create_app(settings: Settings, *, clock: Callable[[], float] | None = None) -> Starlette:
    metrics = LedgerMetrics()
    engine = create_engine(
        settings.database,
        pool_size=settings.database_pool_size,
        sqlite_lock_wait_seconds=SERVING_SQLITE_LOCK_WAIT_SECONDS,
    )
    store = event_store_for(engine)
    committer = GroupCommitter(
        store,
        group_size_max=settings.append_group_size_max,
        group_wait_seconds=settings.append_group_wait_seconds,
        on_group=metrics.append_group_deliveries.observe,
    )
    read_models = SqlReadModelStore(engine)
    resources = Resources(
        engine, store, read_models, InvoiceQueries(engine), metrics, head_revision()
    )
    verifier = WebhookVerifier(
        settings.webhook_keys.keys,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        signed_content=settings.webhook_signed_content,
        future_skew_seconds=settings.webhook_future_skew_seconds,
        payload_form_max_bytes=settings.webhook_payload_form_max_bytes,
    )
    receiver = WebhookReceiver(
        verifier,
        store,
        metrics,
        appender=committer,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.http_body_timeout_seconds,
        items_per_delivery_max=settings.webhook_items_max,
        refusals_recorded_per_second=settings.refusals_recorded_per_second,
        clock=clock or time.time,
    )
    authorizer = _authorizer(settings, metrics)
    if settings.webhook_key_expires_at is not None:
        metrics.webhook_key_expiry_timestamp_seconds.set(
            settings.webhook_key_expires_at.timestamp()
        )
    workers = BackgroundWorkers(
        [
            lambda: _projecting(settings, resources),
            lambda: _reconciling(settings, resources),
            lambda: _retaining(settings, resources),
            lambda: _sampling(settings, resources),
        ]
    )
    query_api = QueryApi(resources.queries, store, read_models, authorizer)
    delivery_api = _delivery_api(settings, engine, store, authorizer)
    console = Console(_console_sources(settings, resources), authorizer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The workers are not started here: the lifespan runs before the port is bound, and
        # a server that cannot listen must not have written anything. LedgerServer starts
        # them once it listens, and stops them before draining requests.
        _warn_about_open_doors(settings, authorizer)
        log.info(
            "service.started",
            database=engine.dialect.name,
            key_ids=sorted(settings.webhook_keys.keys),
            signed_content=settings.webhook_signed_content.value,
            projector=settings.projector_enabled,
        )
        # Everything built so far lives as long as the process: keep the collector from
        # re-scanning it on every collection of the request path's short-lived objects.
        gc.freeze()
        try:
            yield
        finally:
            # Normally stopped already by the server; this covers any other host of the app.
            await workers.stop(settings.shutdown_grace_seconds * WORKERS_SHARE_OF_GRACE)
            log.info("service.stopping")
            # Requests have drained: append what is still queued, fail the rest with 503.
            await committer.close(settings.shutdown_grace_seconds * WORKERS_SHARE_OF_GRACE)
            await receiver.aclose()
            await engine.dispose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        component = request.query_params.get("component", "ingestion")
        if component == "ingestion":
            return await _ingestion_readiness(resources)
        if component == "projector":
            return _projector_readiness(resources)
        return JSONResponse(
            {"error": "unknown_component", "detail": "component is ingestion or projector"},
            status_code=400,
        )

    async def metrics_endpoint(request: Request) -> Response:
        if resources.projector is not None and resources.projector.health.error is not None:
            # The projector has stopped even if its task is still releasing its lease.
            metrics.projector_up.set(0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(app.state.openapi)

    app = Starlette(
        routes=[
            ApiRoute(
                "/webhooks/cybersource",
                receiver.endpoint,
                methods=["GET", "HEAD", "POST"],
                operations=WEBHOOK_OPERATIONS,
            ),
            *query_api.routes(),
            *delivery_api.routes(),
            *console.routes(),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={StoreUnavailable: _try_again_later, ApiError: _api_error},
        middleware=[Middleware(RequestMetrics, metrics=metrics, access_log=settings.access_log)],
        lifespan=lifespan,
    )
    app.state.resources = resources
    app.state.workers = workers
    # Generated from the routes that declare their operations: it describes what is served.
    app.state.openapi = openapi_document(
        declared_operations(app.routes),
        title="invoice-ledger",
        version="1.0",
        description="A ledger of Cybersource invoices: verified webhooks in, invoice state "
        "and reports out.",
    )
    return app


def _authorizer(settings: Settings, metrics: LedgerMetrics) -> ApiAuthorizer:
    failures = {surface: metrics.auth_failures.labels(surface.value) for surface in AuthSurface}
    return ApiAuthorizer(
        settings.api_tokens.tokens,
        operator_tokens=settings.api_tokens.operator_tokens,
        allow_anonymous=settings.api_allow_anonymous,
        throttle=FailureThrottle(settings.auth_failures_max, settings.auth_failure_window_seconds),
        on_failure=lambda surface: failures[surface].inc(),
    )


def _delivery_api(
    settings: Settings, engine: AsyncEngine, store: EventStore, authorizer: ApiAuthorizer
) -> DeliveryApi:
    delivery_log = SqlDeliveryLog(engine)
    items_max = settings.webhook_items_max
    return DeliveryApi(
        delivery_log,
        DeliveryReplayer(delivery_log, store, items_per_delivery_max=items_max),
        DeliveryCorrections(delivery_log, store, items_per_delivery_max=items_max),
        authorizer,
        items_per_delivery_max=items_max,
    )


def _console_sources(settings: Settings, resources: Resources) -> ConsoleSources:
    delivery_log = SqlDeliveryLog(resources.engine)
    items_max = settings.webhook_items_max
    return ConsoleSources(
        queries=resources.queries,
        event_store=resources.store,
        read_models=resources.read_models,
        delivery_log=delivery_log,
        delivery_outcomes=DeliveryOutcomes(resources.engine),
        replayer=DeliveryReplayer(delivery_log, resources.store, items_per_delivery_max=items_max),
        corrections=DeliveryCorrections(
            delivery_log, resources.store, items_per_delivery_max=items_max
        ),
        sessions=SqlConsoleSessions(resources.engine, settings.console_session_seconds),
        items_per_delivery_max=items_max,
    )


def _warn_about_open_doors(settings: Settings, authorizer: ApiAuthorizer) -> None:
    if not settings.webhook_keys.keys:
        log.warning(
            "webhook.no_keys", detail="LEDGER_WEBHOOK_KEYS is empty: every delivery is refused"
        )
    if authorizer.anonymous:
        log.warning(
            "api.anonymous",
            detail="LEDGER_API_ALLOW_ANONYMOUS=true and no LEDGER_API_TOKENS: /v1 answers"
            " every client",
        )
    elif authorizer.loopback_only:
        log.warning(
            "api.no_tokens",
            detail="LEDGER_API_TOKENS is empty: /v1 answers loopback clients only, and none"
            " that came through a proxy",
        )


@asynccontextmanager
async def _projecting(settings: Settings, resources: Resources) -> WorkerContext:
    """Run the projector beside the server for as long as the server runs."""
    if not settings.projector_enabled:
        yield None
        return
    metrics = resources.metrics

    def on_batch(events: int, position: int) -> None:
        metrics.projected_events.inc(events)
        metrics.projector_position.set(position)

    projector = InvoiceProjector(
        resources.store, resources.read_models, owner=projector_owner(), on_batch=on_batch
    )
    resources.projector = projector
    stop, wake = asyncio.Event(), asyncio.Event()
    poll = POLL_SECONDS_POSTGRESQL if is_postgresql(resources.engine) else POLL_SECONDS_SQLITE
    async with appended_events_signal(resources.engine, wake):
        task = asyncio.create_task(projector.run(stop, wake, poll))
        metrics.projector_up.set(1)
        task.add_done_callback(lambda done: _count_projector_stop(done, metrics))
        yield RunningWorker("projector", task, stop)


@asynccontextmanager
async def _reconciling(settings: Settings, resources: Resources) -> WorkerContext:
    """Run the reconciler beside the server when Cybersource credentials are configured."""
    if settings.cybersource_credentials() is None:
        log.info("reconciler.off", detail="no LEDGER_CYBERSOURCE_* credentials configured")
        yield None
        return
    async with reconciler_worker(settings, resources.engine, resources.metrics) as worker:
        log.info("reconciler.on", organizations=list(settings.cybersource_organizations))
        stop = asyncio.Event()
        yield RunningWorker("reconciler", asyncio.create_task(worker.run(stop)), stop)


@asynccontextmanager
async def reconciler_worker(
    settings: Settings, engine: AsyncEngine, metrics: LedgerMetrics
) -> AsyncIterator[ReconcilerWorker]:
    """The reconciler worker and its client, counted in ``metrics``; credentials required."""
    credentials = settings.cybersource_credentials()
    assert credentials is not None, "the reconciler needs LEDGER_CYBERSOURCE_* credentials"
    # Every series from the start at zero, so that an alert on a rate sees its first error.
    for outcome in CallOutcome:
        metrics.reconciler_calls.labels(outcome.value)
    for reason in (*CallFailure, *ReconcilerFailure):
        metrics.reconciler_errors.labels(reason.value)
    for lookup in TransactionLookup:
        metrics.reconciler_transaction_lookups.labels(lookup.value)

    def count_call(outcome: CallOutcome, failure: CallFailure | None) -> None:
        metrics.reconciler_calls.labels(outcome.value).inc()
        if failure is not None:
            metrics.reconciler_errors.labels(failure.value).inc()

    def count_failure(reason: ReconcilerFailure) -> None:
        metrics.reconciler_errors.labels(reason.value).inc()

    def count_transaction_lookup(outcome: TransactionLookup) -> None:
        metrics.reconciler_transaction_lookups.labels(outcome.value).inc()

    def count_sweep(summary: SweepSummary, succeeded: bool) -> None:
        if succeeded:
            metrics.reconciler_sweep_last_success.set_to_current_time()

    limits = ClientLimits(max_requests_per_second=settings.cybersource_max_requests_per_second)
    client = CybersourceClient(
        settings.cybersource_base_url, credentials, limits, observer=count_call
    )
    async with client:
        yield ReconcilerWorker(
            Reconciler(
                client,
                event_store_for(engine),
                settings.cybersource_organizations,
                ledger=SqlLedgerView(engine),
                on_failure=count_failure,
                on_transaction_lookup=count_transaction_lookup,
            ),
            InvoiceQueries(engine),
            SqlReadModelStore(engine),
            owner=projector_owner(),
            sweep_interval_seconds=settings.reconcile_interval_seconds,
            full_sweep_interval_seconds=settings.reconciler_full_sweep_interval_seconds,
            full_sweeps=SqlSweepSchedule(engine),
            on_failure=count_failure,
            on_sweep=count_sweep,
        )


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


@asynccontextmanager
async def _retaining(settings: Settings, resources: Resources) -> WorkerContext:
    """Apply the inbox retention policy every ``retention_interval_seconds``."""
    policy = RetentionPolicy.from_days(
        refused_days=settings.retention_refused_days,
        accepted_days=settings.retention_accepted_days,
    )
    if not policy.periods:
        yield None
        return
    metrics = resources.metrics

    def on_pruned(result: PruneResult) -> None:
        metrics.inbox_rows_pruned.labels(result.kind.value).inc(result.rows)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_retention(
            resources.engine, policy, stop, settings.retention_interval_seconds, on_pruned
        )
    )
    yield RunningWorker("retention", task, stop)


@asynccontextmanager
async def _sampling(settings: Settings, resources: Resources) -> WorkerContext:
    """Keep the projection-lag and inbox gauges current."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        sample_backlog(resources.engine, resources.metrics, stop, settings.metrics_sample_seconds)
    )
    yield RunningWorker("backlog_gauges", task, stop)


def _count_projector_stop(task: asyncio.Task[None], metrics: LedgerMetrics) -> None:
    metrics.projector_up.set(0)
    if not task.cancelled() and task.exception() is not None:
        metrics.projector_errors.inc()


async def _try_again_later(request: Request, error: Exception) -> Response:
    log.warning("request.store_unavailable", path=request.url.path, error=str(error))
    if request.url.path.startswith(CONSOLE_PATH):
        # A person reads the console: a page, with the console's headers, not a JSON body.
        return HTMLResponse(
            STORE_UNAVAILABLE_PAGE, status_code=503,
            headers={**SECURITY_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)},
        )  # fmt: skip
    return JSONResponse(
        {"error": "store_unavailable", "detail": "the ledger cannot be reached; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse(
        error.document,
        status_code=error.status_code,
        headers=error.headers,
    )


async def _ingestion_readiness(resources: Resources) -> Response:
    """Whether deliveries can be stored: the database answers and its schema is at head.

    A stopped projector is not a reason to take the receiver out of the load balancer: the
    webhooks it would refuse are the facts a restarted projector needs.
    """
    problems = []
    try:
        async with resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await current_revision(resources.engine)
        if revision != resources.expected_revision:
            problems.append(
                f"schema at {revision}, expected {resources.expected_revision}: run migrate"
            )
    except Exception as error:
        problems.append(
            f"database unavailable: {unavailability_reason(error)}"
            if is_unavailability(error)
            else f"database check failed with {type(error).__name__}"
        )
    if problems:
        return JSONResponse(
            {"status": "unready", "problems": problems},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ready"})


def _projector_readiness(resources: Resources) -> Response:
    projector = resources.projector
    if projector is None:
        return JSONResponse({"status": "disabled"})
    if projector.health.error:
        # /readyz is unauthenticated, and an error's message may quote a statement's values:
        # name the error's type only ("Type: message" is how the projector records it).
        error_type = projector.health.error.partition(":")[0]
        return JSONResponse(
            {"status": "unready", "problems": [f"projector stopped on {error_type}; see the logs"]},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "leader": projector.health.leader})
