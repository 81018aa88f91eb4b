"""Counts and times every HTTP request by route template, method and status.

The route is the template the router matched (``/v1/invoices/{invoiceNumber}``), never the
raw path, so a client cannot create series at will; a request no route matched is
``unmatched``.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import LedgerMetrics

UNMATCHED_ROUTE = "unmatched"
# Methods outside this set share one label, for the same reason as unmatched paths.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: LedgerMetrics) -> None:
        self._app = app
        self._metrics = metrics
        # prometheus_client's labels() takes a lock and builds a key on every call; the
        # children are kept here instead. Bounded: routes, methods and statuses are few.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the application raised

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_and_note_status)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            requests, durations = self._series_of(
                _route_template(scope.get("route")), method, status
            )
            requests.inc()
            durations.observe(time.perf_counter() - started)

    def _series_of(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self._metrics.http_requests.labels(route, method, str(status)),
                self._metrics.http_request_duration_seconds.labels(route, method),
            )
            self._series[key] = series
        return series


def _route_template(route: BaseRoute | None) -> str:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE
