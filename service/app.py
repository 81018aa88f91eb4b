"""Wiring: builds the engine, store, verifier and routes from settings. Nothing else does."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.metrics import LedgerMetrics
from service.settings import Settings
from service.store.database import create_engine
from service.store.errors import StoreUnavailable, is_unavailability
from service.store.event_store import SqlEventStore
from service.store.migrations import current_revision, head_revision
from service.webhooks.receiver import WebhookReceiver
from service.webhooks.signature import WebhookVerifier

log = structlog.get_logger("service.app")

RETRY_AFTER_SECONDS = 60
READINESS_TIMEOUT_SECONDS = 2.0


@dataclass
class Resources:
    engine: AsyncEngine
    store: SqlEventStore
    metrics: LedgerMetrics
    expected_revision: str | None


def create_app(settings: Settings, *, clock: Callable[[], float] | None = None) -> Starlette:
    metrics = LedgerMetrics()
    engine = create_engine(settings.database, pool_size=settings.database_pool_size)
    store = SqlEventStore(engine)
    resources = Resources(
        engine=engine, store=store, metrics=metrics, expected_revision=head_revision()
    )
    verifier = WebhookVerifier(
        settings.webhook_keys.keys,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        signed_content=settings.webhook_signed_content,
    )
    receiver_options = {"clock": clock} if clock else {}
    receiver = WebhookReceiver(
        verifier, store, metrics, max_body_bytes=settings.max_body_bytes, **receiver_options
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.webhook_keys.keys:
            log.warning(
                "webhook.no_keys",
                detail="LEDGER_WEBHOOK_KEYS is empty: every delivery will be refused",
            )
        log.info(
            "service.started",
            database=engine.dialect.name,
            key_ids=sorted(settings.webhook_keys.keys),
            signed_content=settings.webhook_signed_content.value,
        )
        # Everything built so far lives as long as the process: keep the collector from
        # re-scanning it on every collection of the request path's short-lived objects.
        gc.freeze()
        try:
            yield
        finally:
            await engine.dispose()
            log.info("service.stopped")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        return await _readiness(resources)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/webhooks/cybersource", receiver.endpoint, methods=["GET", "HEAD", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={
            StoreUnavailable: _try_again_later,
        },
        lifespan=lifespan,
    )
    app.state.resources = resources
    return app


async def _try_again_later(request: Request, error: Exception) -> Response:
    log.warning("request.store_unavailable", path=request.url.path, error=str(error))
    return JSONResponse(
        {"error": "store_unavailable", "detail": "the ledger cannot store right now; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _readiness(resources: Resources) -> Response:
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
        if not is_unavailability(error):
            raise
        problems.append("database unreachable")
    if problems:
        return JSONResponse({"status": "unready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})
