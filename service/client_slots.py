"""How much of the HTTP server one client may hold: open connections and requests in flight.

uvicorn's own bound (``limit_concurrency``) counts every open connection and every request
against one number for the whole process, so one peer that opens a few hundred connections
and sends half a request head on each gets every other client answered 503. Here the slots
are counted per client instead:

* requests in flight (a request whose head has arrived, until its answer is sent): at most
  ``requests_max`` in the process and ``per_client_max`` per client; beyond either, 503 with
  ``Retry-After`` at once, and the connection is closed;
* a connection whose request head has not arrived yet holds no request slot. It is bounded
  by the head deadline (``service/http_server.py``) and per peer address: a peer holds at most
  ``per_client_max`` open connections, and one beyond that is closed before a byte is read;
* open connections in all: at most ``OPEN_CONNECTIONS_PER_REQUEST_SLOT`` times
  ``requests_max`` (each costs a socket and a few kilobytes; a request, far more).

The client of a request is its peer address, or, when the peer is a trusted proxy, the
address the proxy forwarded (uvicorn's proxy-headers middleware puts it in the scope before
the request reaches ``RequestSlots``). A trusted proxy's own connections are not counted per
peer: they carry every client behind it, and the proxy is the one to bound each of them.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from enum import StrEnum

from starlette.types import ASGIApp, Receive, Scope, Send

# Idle and half-received connections cost a socket and a few kilobytes each; a request in
# flight can hold a megabyte of body and a database connection. So open connections may
# outnumber request slots, by this factor.
OPEN_CONNECTIONS_PER_REQUEST_SLOT = 4
RETRY_AFTER_SECONDS = 1


class SlotRefusal(StrEnum):
    """Why a connection or a request was refused, as counted in the metrics."""

    CLIENT_CONNECTIONS = "client_connections"  # the peer already holds its share
    OPEN_CONNECTIONS = "open_connections"  # the process holds all it may
    CLIENT_REQUESTS = "client_requests"
    REQUESTS = "requests"


RefusalObserver = Callable[[SlotRefusal], None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry.strip()[:50]!r} is not an IP address or network") from None
    return tuple(networks)


class ClientSlots:
    """The counts behind the bounds above, shared by every connection of one server.

    Not thread-safe, and need not be: uvicorn runs every connection on one event loop."""

    def __init__(
        self,
        *,
        requests_max: int,
        per_client_max: int,
        trusted_proxies: tuple[Network, ...] = (),
        on_refusal: RefusalObserver | None = None,
    ) -> None:
        assert 1 <= per_client_max <= requests_max, "a client's share is within the whole"
        self.requests_max = requests_max
        self.per_client_max = per_client_max
        self.open_connections_max = requests_max * OPEN_CONNECTIONS_PER_REQUEST_SLOT
        self._trusted_proxies = trusted_proxies
        self._on_refusal = on_refusal
        self._connections_by_peer: Counter[str] = Counter()
        self._open_connections = 0
        self._requests_by_client: Counter[str] = Counter()
        self._requests = 0

    def is_trusted_proxy(self, host: str) -> bool:
        if not self._trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted_proxies)

    def open_connection(self, peer: str) -> bool:
        """Count a new connection from ``peer``; False (counted nowhere) if it must be closed."""
        if self._open_connections >= self.open_connections_max:
            return self._refuse(SlotRefusal.OPEN_CONNECTIONS)
        per_peer = not self.is_trusted_proxy(peer)
        if per_peer and self._connections_by_peer[peer] >= self.per_client_max:
            return self._refuse(SlotRefusal.CLIENT_CONNECTIONS)
        self._open_connections += 1
        if per_peer:
            self._connections_by_peer[peer] += 1
        return True

    def close_connection(self, peer: str) -> None:
        """Release what ``open_connection`` counted (call only when it returned True)."""
        self._open_connections -= 1
        if not self.is_trusted_proxy(peer):
            self._release(self._connections_by_peer, peer)

    def take_request(self, client: str) -> SlotRefusal | None:
        """Count a request of ``client`` in flight; the refusal instead when it may not be."""
        if self._requests >= self.requests_max:
            self._refuse(SlotRefusal.REQUESTS)
            return SlotRefusal.REQUESTS
        if self._requests_by_client[client] >= self.per_client_max:
            self._refuse(SlotRefusal.CLIENT_REQUESTS)
            return SlotRefusal.CLIENT_REQUESTS
        self._requests += 1
        self._requests_by_client[client] += 1
        return None

    def release_request(self, client: str) -> None:
        self._requests -= 1
        self._release(self._requests_by_client, client)

    def _refuse(self, refusal: SlotRefusal) -> bool:
        if self._on_refusal is not None:
            self._on_refusal(refusal)
        return False

    @staticmethod
    def _release(counts: Counter[str], key: str) -> None:
        # Entries at zero are removed: the counters stay as small as the clients present.
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]


class RequestSlots:
    """ASGI middleware: a request beyond its client's share, or the process's, is answered
    503 with ``Retry-After`` before the application sees it."""

    def __init__(self, app: ASGIApp, slots: ClientSlots) -> None:
        self._app = app
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else ""
        refusal = self._slots.take_request(host)
        if refusal is not None:
            await _answer_busy(send, refusal)
            return
        try:
            await self._app(scope, receive, send)
        finally:
            self._slots.release_request(host)


_BUSY_DETAILS = {
    SlotRefusal.CLIENT_REQUESTS: b"this client has as many requests in flight as it may",
    SlotRefusal.REQUESTS: b"the server has as many requests in flight as it may",
}


async def _answer_busy(send: Send, refusal: SlotRefusal) -> None:
    body = (
        b'{"error":"too_many_requests_in_flight","detail":"' + _BUSY_DETAILS[refusal] + b'"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                # The connection goes too: its peer may be the one holding too much.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
