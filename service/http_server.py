"""The HTTP server's bounds on what one client can hold: head size and count, read timeouts,
idle keep-alive, and a connection limit answered with 503.

uvicorn bounds some of these itself (keep-alive timeout, ``limit_concurrency``, and with h11
the head size). The rest is added here: a deadline for a request head to arrive whole (uvicorn
has none, so a client trickling headers would hold its connection for ever), the head size
for httptools (which accumulates the URL and headers without limit), and the header count.
The body's read timeout is the receiver's, the only endpoint that reads a body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

GRACEFUL_SHUTDOWN_SECONDS = 10


class HttpImplementation(StrEnum):
    H11 = "h11"
    HTTPTOOLS = "httptools"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 16_384
    max_header_count: int = 100
    header_timeout_seconds: float = 10.0
    keep_alive_timeout_seconds: int = 5
    max_connections: int = 200


class HeadTooLarge(Exception):
    """Raised inside httptools' callbacks: uvicorn answers 400 and closes the connection."""


class _LedgerServerConfig(uvicorn.Config):
    http_limits: HttpLimits


def limits_of(config: uvicorn.Config) -> HttpLimits:
    assert isinstance(config, _LedgerServerConfig), "built by server_config"
    return config.http_limits


class _HeadDeadline:
    """A request head must arrive whole within ``header_timeout_seconds`` of the connection
    opening or of the previous response, however slowly its bytes trickle in."""

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    config: uvicorn.Config
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(
            limits_of(self.config).header_timeout_seconds, self._head_overdue, self.cycle
        )

    def _head_overdue(self, cycle_when_armed: Any) -> None:
        # A new cycle means a head arrived in time; the same one means none has.
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            self.transport.close()


class BoundedH11Protocol(_HeadDeadline, H11Protocol):
    """h11 bounds the head's size itself (``h11_max_incomplete_event_size``)."""


class BoundedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_head_bytes(self, count: int) -> None:
        self._head_bytes += count
        if self._head_bytes > limits_of(self.config).max_header_bytes:
            raise HeadTooLarge


class HeaderCountLimit:
    """431 for a request with more headers than the limit, before the application sees it."""

    def __init__(self, app: ASGIApp, max_header_count: int) -> None:
        self._app = app
        self._max_header_count = max_header_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["headers"]) > self._max_header_count:
            response = JSONResponse(
                {
                    "error": "too_many_headers",
                    "detail": f"a request may carry at most {self._max_header_count} headers",
                },
                status_code=431,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    implementation: HttpImplementation,
    limits: HttpLimits,
) -> uvicorn.Config:
    protocol = (
        BoundedH11Protocol if implementation is HttpImplementation.H11 else BoundedHttpToolsProtocol
    )
    config = _LedgerServerConfig(
        HeaderCountLimit(app, limits.max_header_count),
        host=host,
        port=port,
        http=protocol,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_timeout_seconds,
        # Connections and in-flight requests beyond this get 503 at once: each holds memory,
        # and Cybersource retries a 503.
        limit_concurrency=limits.max_connections,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
        access_log=False,
        lifespan="on",
    )
    config.http_limits = limits
    return config
