"""The routes operators and orchestrators call: liveness, readiness, metrics, the API's
contract; and the answers given when the database cannot be reached."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from service.bootstrap import Ledger
from service.fronts.console.views import SECURITY_HEADERS
from service.fronts.errors import ApiError
from service.store.errors import is_unavailability, unavailability_reason
from service.store.migrations import current_revision, head_revision
from service.workers.serving import ServingWorkers

log = structlog.get_logger("service.app")

RETRY_AFTER_SECONDS = 60
CONSOLE_PATH = "/console"
STORE_UNAVAILABLE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<title>Ledger unavailable</title><link rel="stylesheet" href="/console/console.css">'
    "</head><body><main><h1>The ledger cannot be reached</h1>"
    '<p class="problem" role="alert">Its database is not answering. Nothing is lost: try'
    ' again in a minute; <a href="/readyz">/readyz</a> says why.</p></main></body></html>'
)


def operations_routes(
    ledger: Ledger, workers: ServingWorkers, openapi: Callable[[], object]
) -> list[Route]:
    expected_revision = head_revision()
    metrics = ledger.metrics

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        component = request.query_params.get("component", "ingestion")
        if component == "ingestion":
            return await _ingestion_readiness(ledger, expected_revision)
        if component == "projector":
            return _projector_readiness(workers)
        return JSONResponse(
            {"error": "unknown_component", "detail": "component is ingestion or projector"},
            status_code=400,
        )

    async def metrics_endpoint(request: Request) -> Response:
        projector = workers.projector
        if projector is not None and projector.health.error is not None:
            # The projector has stopped even if its task is still releasing its lease.
            metrics.projector_up.set(0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(openapi())

    return [
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


async def try_again_later(request: Request, error: Exception) -> Response:
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


async def api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse(
        error.document,
        status_code=error.status_code,
        headers=error.headers,
    )


async def _ingestion_readiness(ledger: Ledger, expected_revision: str | None) -> Response:
    """Whether deliveries can be stored: the database answers and its schema is at head.

    A stopped projector is not a reason to take the receiver out of the load balancer: the
    webhooks it would refuse are the facts a restarted projector needs.
    """
    problems = []
    try:
        async with ledger.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await current_revision(ledger.engine)
        if revision != expected_revision:
            problems.append(f"schema at {revision}, expected {expected_revision}: run migrate")
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


def _projector_readiness(workers: ServingWorkers) -> Response:
    projector = workers.projector
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
