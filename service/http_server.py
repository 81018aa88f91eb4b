"""The HTTP server's bounds on what one client can hold: head size and count, read timeouts,
idle keep-alive, and its share of the connections and requests in flight.

uvicorn bounds some of these itself (keep-alive timeout, and with h11 the head size). The rest
is added here: a deadline for a request head to arrive whole (uvicorn has none, so a client
trickling headers would hold its connection for ever), the head size for httptools (which
accumulates the URL and headers without limit), the header count, and per-client slots
(``service/client_slots.py``) in place of uvicorn's ``limit_concurrency``, which one peer
holding half-sent heads could fill for everybody. The body's read timeout is the receiver's,
the only endpoint that reads a body.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import Any, Protocol

import structlog
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.client_slots import ClientSlots, RefusalObserver, RequestSlots, parse_networks

GRACEFUL_SHUTDOWN_SECONDS = 10
# Of the shutdown grace, the share the background workers get to finish on their own before
# they are cancelled; the rest drains in-flight requests and closes the database pool.
WORKERS_SHARE_OF_GRACE = 0.6
# Kept back from the grace for the lifespan's shutdown (closing the database pool).
LIFESPAN_SHUTDOWN_RESERVE_SECONDS = 0.5
LISTEN_BACKLOG = 2048

log = structlog.get_logger("service.http_server")


class HttpImplementation(StrEnum):
    H11 = "h11"
    HTTPTOOLS = "httptools"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 16_384
    max_header_count: int = 100
    header_timeout_seconds: float = 10.0
    keep_alive_timeout_seconds: int = 5
    # Requests in flight in the process; a peer's open connections and a client's requests
    # are bounded by the share below (service/client_slots.py).
    max_connections: int = 200
    max_connections_per_client: int = 20
    # Peers whose X-Forwarded-For names the client (addresses or CIDR blocks); by default
    # loopback, as uvicorn trusts by default (a sidecar or local reverse proxy).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")


class HeadTooLarge(Exception):
    """Raised inside httptools' callbacks: uvicorn answers 400 and closes the connection."""


class _LedgerServerConfig(uvicorn.Config):
    http_limits: HttpLimits
    client_slots: ClientSlots


def limits_of(config: uvicorn.Config) -> HttpLimits:
    assert isinstance(config, _LedgerServerConfig), "built by server_config"
    return config.http_limits


def _slots_of(config: uvicorn.Config) -> ClientSlots:
    assert isinstance(config, _LedgerServerConfig), "built by server_config"
    return config.client_slots


class _BoundedConnection:
    """A connection is counted against its peer's share of connections (and closed at once
    beyond it), and a request head must arrive whole within ``header_timeout_seconds`` of the
    connection opening or of the previous response, however slowly its bytes trickle in."""

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    config: uvicorn.Config
    client: tuple[str, int] | None
    _head_deadline: asyncio.TimerHandle | None = None
    _head_due_at = 0.0
    _cycle_when_armed: Any = None
    _counted_peer: str | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        peer = self.client[0] if self.client else ""
        if not _slots_of(self.config).open_connection(peer):
            # Before a byte is read: a peer holding its share cannot make us buffer more.
            transport.close()
            return
        self._counted_peer = peer
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        if self._counted_peer is not None:
            _slots_of(self.config).close_connection(self._counted_peer)
            self._counted_peer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_head_deadline(self) -> None:
        # One timer per connection, moved on when it fires: re-arming follows every response,
        # and cancelling and making a timer each time cost more than the rest of the bound.
        self._head_due_at = self.loop.time() + limits_of(self.config).header_timeout_seconds
        self._cycle_when_armed = self.cycle
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_at(self._head_due_at, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_deadline = None
        # A new cycle means a head arrived in time (the next response re-arms); the same one
        # means none has since the deadline was last armed.
        if self.cycle is not self._cycle_when_armed:
            return
        if self.loop.time() < self._head_due_at:  # armed again since this timer was made
            self._head_deadline = self.loop.call_at(self._head_due_at, self._head_overdue)
        elif not self.transport.is_closing():
            self.transport.close()


class BoundedH11Protocol(_BoundedConnection, H11Protocol):
    """h11 bounds the head's size itself (``h11_max_incomplete_event_size``)."""


class _ResponseInOneWrite:
    """The transport as a request's cycle sees it: a response head whose body follows (a
    ``content-length`` above zero) is held and written with the body's first bytes, in one
    write. uvicorn writes them apart, and on a small answer (every webhook's) the second
    write is a second system call and packet for the same few hundred bytes."""

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head_seen = False
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif not self._head_seen and self._cycle.response_started:
            # The first write once the response has started is its head (a 100 Continue is
            # written before): held only when body bytes must follow it.
            self._head_seen = True
            cycle = self._cycle
            if (
                cycle.chunked_encoding is False
                and cycle.expected_content_length > 0
                and cycle.scope["method"] != "HEAD"
            ):
                self._held = data
                return
        self._transport.write(data)

    def close(self) -> None:
        # A response failing after its head still sends the head first, as uvicorn would.
        if self._held is not None:
            self._transport.write(self._held)
            self._held = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(_BoundedConnection, HttpToolsProtocol):
    _head_bytes = 0

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        # A new request's cycle (an upgrade makes none); its task has not run yet.
        if self.cycle is not None and self.cycle is not previous:
            self.cycle.transport = _ResponseInOneWrite(self.transport, self.cycle)

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
    on_refusal: RefusalObserver | None = None,
) -> uvicorn.Config:
    protocol = (
        BoundedH11Protocol if implementation is HttpImplementation.H11 else BoundedHttpToolsProtocol
    )
    trusted_proxies = parse_networks(limits.trusted_proxies)
    slots = ClientSlots(
        requests_max=limits.max_connections,
        per_client_max=limits.max_connections_per_client,
        trusted_proxies=trusted_proxies,
        on_refusal=on_refusal,
    )
    config = _LedgerServerConfig(
        # Requests beyond a client's share, or the process's, get 503 at once: each holds
        # memory, and Cybersource retries a 503.
        RequestSlots(HeaderCountLimit(app, limits.max_header_count), slots),
        host=host,
        port=port,
        http=protocol,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_timeout_seconds,
        # Replaced by the per-client slots: uvicorn's bound counts half-received connections
        # against requests, for every client at once.
        limit_concurrency=None,
        # X-Forwarded-For and -Proto count only when a trusted proxy sent them.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=[str(network) for network in trusted_proxies],
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
        access_log=False,
        lifespan="on",
    )
    config.http_limits = limits
    config.client_slots = slots
    return config


class BackgroundWork(Protocol):
    """What runs beside the server (projector, reconciler, retention): started once the port
    is bound, stopped before in-flight requests are drained."""

    async def start(self) -> None: ...

    async def stop(self, timeout_seconds: float) -> None: ...


class ListenFailed(Exception):
    """The address cannot be listened on (in use, not this host's, not permitted)."""


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind before anything else runs, so that a port in use stops ``serve`` before it has
    touched the database."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenFailed(f"cannot resolve {host}: {error.strerror}") from None
    family, kind, protocol, _, address = infos[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(LISTEN_BACKLOG)
    except OSError as error:
        listener.close()
        reason = "address already in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise ListenFailed(f"cannot listen on {host}:{port}: {reason}") from None
    listener.set_inheritable(True)
    return listener


class LedgerServer(uvicorn.Server):
    """uvicorn's server, with the service's start and stop order.

    Start: the socket is bound (by the caller), the app's lifespan runs, and only then the
    background workers start. Stop (SIGTERM or SIGINT): stop accepting connections, stop the
    workers (cancelled if they outlast their share of the grace: the projector's batch and
    checkpoint are one transaction, the reconciler appends each invoice's facts in one),
    drain in-flight requests, close the pool; all within ``grace_seconds``. A second signal
    ends the process at once.
    """

    def __init__(
        self, config: uvicorn.Config, workers: BackgroundWork | None, grace_seconds: float
    ) -> None:
        super().__init__(config)
        self._workers = workers
        self._grace_seconds = grace_seconds

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            for listening in sockets or ():
                host, port = listening.getsockname()[:2]
                log.info("server.listening", host=host, port=port)
            if self._workers is not None:
                await self._workers.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        deadline = time.monotonic() + self._grace_seconds
        log.info("server.stopping", grace_seconds=self._grace_seconds)
        for server in self.servers:
            server.close()  # no new connections while the workers stop
        if self._workers is not None:
            await self._workers.stop(self._grace_seconds * WORKERS_SHARE_OF_GRACE)
        remaining_seconds = deadline - time.monotonic() - LIFESPAN_SHUTDOWN_RESERVE_SECONDS
        self.config.timeout_graceful_shutdown = max(int(remaining_seconds), 1)
        await super().shutdown(sockets)
        log.info("server.stopped", seconds_left=round(deadline - time.monotonic(), 3))
        # uvicorn raises the stopping signal again once it has stopped, so that the process
        # ends as the signal's default would (exit code -15). A stop that completed its grace
        # is a clean exit: code 0, what an orchestrator reads as a normal end.
        self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            # A second signal: the operator wants out now. Nothing is half-written by leaving:
            # every write is one transaction, which the database rolls back on disconnect.
            log.warning("server.exit_now", signal=signal.Signals(sig).name)
            sys.stderr.flush()
            os._exit(128 + sig)
        super().handle_exit(sig, frame)
