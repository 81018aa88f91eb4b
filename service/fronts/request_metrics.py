"""Counts, times and logs every HTTP request by route template, method and status, under a
request id.

The route is the template the router matched (``/v1/invoices/{invoiceNumber}``), never the
raw path, so a client cannot create series at will; a request no route matched is
``unmatched``. The access log line names the same template, never the path or query (they
can hold an invoice number or an e-mail filter) nor the client's address.

The request id is the caller's ``X-Request-Id`` when it is a short token, else a new one;
it is answered back in ``X-Request-Id`` and bound to every log line the request writes.

A route served ``direct`` (the webhook's POST, the one path every delivery takes) is handed
its request here, counted, timed and logged the same way, without passing through the
router and Starlette's request and exception layers that it does not use.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

import structlog
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import PlainLines
from service.metrics import LedgerMetrics

log = structlog.get_logger("service.http")
UNMATCHED_ROUTE = "unmatched"
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._\-]{8,64}")
# Methods outside this set share one label, for the same reason as unmatched paths.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(
        self,
        app: ASGIApp,
        metrics: LedgerMetrics,
        access_log: bool = True,
        direct: Mapping[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self._app = app
        # (method, path template) to the application that answers it without the router.
        self._direct = dict(direct or {})
        self._metrics = metrics
        self._access_log = access_log
        # prometheus_client's labels() takes a lock and builds a key on every call; the
        # children are kept here instead. Bounded: routes, methods and statuses are few.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # The access line's writer, sought at the first line (logging is configured by then);
        # None when structlog's own chain writes it.
        self._access_lines: PlainLines | None = None
        self._access_lines_sought = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the application raised
        request_id = _request_id(scope)

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        direct_route = (scope["method"], scope["path"])
        app = self._direct.get(direct_route) if not scope.get("root_path") else None
        # Reset by its token afterwards (bound_contextvars would copy the whole context to
        # save what it replaces, on every request).
        bound = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        try:
            await (app or self._app)(scope, receive, send_and_note_status)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            route = direct_route[1] if app else _route_template(scope.get("route"))
            requests, durations = self._series_of(route, method, status)
            requests.inc()
            durations.observe(seconds)
            if self._access_log:
                self._log_access(method, route, status, seconds)
            structlog.contextvars.reset_contextvars(**bound)

    def _log_access(self, method: str, route: str, status: int, seconds: float) -> None:
        if not self._access_lines_sought:
            self._access_lines = PlainLines.of(log)
            self._access_lines_sought = True
        (self._access_lines or log).info(
            "http.request", method=method, route=route, status=status,
            milliseconds=round(seconds * 1000, 3),
        )  # fmt: skip

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


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _REQUEST_ID.fullmatch(value):
            return bytes(value)
    # 32 hex digits, as uuid4().hex gave, without building a UUID.
    return os.urandom(16).hex().encode()


def _route_template(route: BaseRoute | None) -> str:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE
