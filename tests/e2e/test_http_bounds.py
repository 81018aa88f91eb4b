"""What one client can hold of the server is bounded, and valid deliveries keep being
acknowledged while clients abuse it. The real ``serve`` process, over sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.databases import fresh_sqlite_database
from tests.support.process import ServedProcess, serving_process
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

WEBHOOK_PATH = "/webhooks/cybersource"
HEADER_TIMEOUT_SECONDS = 2
MAX_HEADER_BYTES = 16_384
# Growth of the server's resident memory allowed while it is abused: far below what the
# abuse would cost unbounded (tens of megabytes of headers held per connection).
RESIDENT_GROWTH_BYTES_MAX = 40 * 1024 * 1024
SLOW_CLIENTS = 60
FLOOD_CLIENTS = 20
FLOOD_BYTES_PER_CLIENT = 4 * 1024 * 1024


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServedProcess]:
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_HTTP_IMPLEMENTATION": request.param,
            "LEDGER_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
            "LEDGER_HTTP_BODY_TIMEOUT_SECONDS": "1",
            "LEDGER_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            "LEDGER_HTTP_MAX_HEADER_COUNT": "50",
            "LEDGER_HTTP_MAX_CONNECTIONS": "100",
            # One address plays every client here: its share is the whole.
            "LEDGER_HTTP_MAX_CONNECTIONS_PER_CLIENT": "100",
        }
        with serving_process(environment, tmp_path / "serve.log") as served:
            yield served


async def deliver_valid(base_url: str, count: int, pause_seconds: float) -> list[str]:
    statuses = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for index in range(count):
            body = encode(invoice_notification(f"INV-OK-{index}"))
            response = await client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
            statuses.append(f"{response.status_code} {response.json().get('status')}")
            await asyncio.sleep(pause_seconds)
    return statuses


async def trickle_headers(port: int, seconds: float) -> float | None:
    """Send a request head a line at a time; the seconds until the server hung up, or None."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /webhooks/cybersource HTTP/1.1\r\nHost: ledger\r\n")
        while time.monotonic() - started < seconds:
            try:
                if await asyncio.wait_for(reader.read(4096), 0.3) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            except ConnectionError:
                return time.monotonic() - started
        return None
    finally:
        writer.close()


async def flood_headers(port: int) -> int:
    """Send header lines as fast as the server takes them; the bytes it accepted first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hung_up = asyncio.create_task(reader.read(-1))  # whatever it answers, until it hangs up
    sent = 0
    line = b"X-Flood: " + b"f" * 1000 + b"\r\n"
    try:
        writer.write(b"POST /webhooks/cybersource HTTP/1.1\r\nHost: ledger\r\n")
        while sent < FLOOD_BYTES_PER_CLIENT and not hung_up.done():
            writer.write(line * 16)
            await writer.drain()
            sent += len(line) * 16
            await asyncio.sleep(0)
    except ConnectionError:
        pass
    finally:
        writer.close()
        hung_up.cancel()
    return sent


async def peak_resident_bytes(server: ServedProcess, stop: asyncio.Event) -> int:
    peak = server.resident_bytes()
    while not stop.is_set():
        peak = max(peak, server.resident_bytes())
        await asyncio.sleep(0.05)
    return peak


def test_slow_clients_are_cut_off_at_the_head_deadline_while_deliveries_are_acknowledged(
    server: ServedProcess,
) -> None:
    async def scenario() -> tuple[list[float | None], list[str], int]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(peak_resident_bytes(server, stop))
        slow = [
            trickle_headers(server.port, HEADER_TIMEOUT_SECONDS * 3) for _ in range(SLOW_CLIENTS)
        ]
        *hang_ups, statuses = await asyncio.gather(
            *slow, deliver_valid(server.base_url, 20, pause_seconds=0.2)
        )
        stop.set()
        return hang_ups, statuses, await sampler

    before = server.resident_bytes()
    hang_ups, statuses, peak = asyncio.run(scenario())
    assert statuses == ["200 accepted"] * 20
    assert all(
        seconds is not None and seconds < HEADER_TIMEOUT_SECONDS + 1.5 for seconds in hang_ups
    ), hang_ups
    assert peak - before < RESIDENT_GROWTH_BYTES_MAX


def test_a_header_flood_is_cut_off_at_the_head_size_while_deliveries_are_acknowledged(
    server: ServedProcess,
) -> None:
    async def scenario() -> tuple[list[int], list[str], int]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(peak_resident_bytes(server, stop))
        floods = [flood_headers(server.port) for _ in range(FLOOD_CLIENTS)]
        *accepted, statuses = await asyncio.gather(
            *floods, deliver_valid(server.base_url, 20, pause_seconds=0.05)
        )
        stop.set()
        return accepted, statuses, await sampler

    before = server.resident_bytes()
    accepted, statuses, peak = asyncio.run(scenario())
    assert statuses == ["200 accepted"] * 20
    # Socket buffers take some bytes after the server stops reading; never the whole flood.
    assert all(sent < FLOOD_BYTES_PER_CLIENT for sent in accepted), str(accepted)
    assert peak - before < RESIDENT_GROWTH_BYTES_MAX, (before, peak)


def hold_a_request_in_flight(port: int, source: str = "127.0.0.1", **headers: str) -> socket.socket:
    """A webhook request whose head has arrived and whose body never comes: in flight until
    the body timeout."""
    connection = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    connection.sendall(
        b"POST /webhooks/cybersource HTTP/1.1\r\nHost: ledger\r\n"
        + f"v-c-signature: {signed_headers(b'{}')['v-c-signature']}\r\n{extra}".encode()
        + b"Content-Length: 100\r\n\r\n{"
    )
    return connection


def get_from(base_url: str, path: str, source: str, **headers: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base_url, transport=transport, timeout=10) as client:
        return client.get(path, headers=headers)


@contextmanager
def held(connections: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        time.sleep(0.3)  # the server has read every head
        yield connections
    finally:
        for connection in connections:
            connection.close()


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServedProcess]:
    """Five requests in flight in all, two per client; 127.0.0.9 is a trusted proxy."""
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_HTTP_MAX_CONNECTIONS": "5",
            "LEDGER_HTTP_MAX_CONNECTIONS_PER_CLIENT": "2",
            "LEDGER_HTTP_TRUSTED_PROXIES": "127.0.0.9",
        }
        with serving_process(environment, tmp_path / "serve.log") as served:
            yield served


def test_requests_in_flight_beyond_the_limit_are_answered_503(
    small_server: ServedProcess,
) -> None:
    sources = ["127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5"]
    with held([hold_a_request_in_flight(small_server.port, source) for source in sources]):
        busy = get_from(small_server.base_url, "/healthz", "127.0.0.6")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"] == "too_many_requests_in_flight"
    time.sleep(0.3)
    assert get_from(small_server.base_url, "/healthz", "127.0.0.6").status_code == 200


def test_connections_without_a_whole_head_hold_no_request_slot(
    small_server: ServedProcess,
) -> None:
    # Nine peers, each holding its share (two) of connections with half-sent heads: eighteen
    # open connections against five request slots (of twenty connections in all), and
    # requests are still served.
    half_heads = []
    for peer in range(9):
        for _ in range(2):
            connection = socket.create_connection(
                ("127.0.0.1", small_server.port), source_address=(f"127.0.0.{20 + peer}", 0)
            )
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n")
            half_heads.append(connection)
    with held(half_heads):
        assert get_from(small_server.base_url, "/healthz", "127.0.0.6").status_code == 200


def test_a_peer_beyond_its_share_of_connections_is_closed_before_it_is_read_others_served(
    small_server: ServedProcess,
) -> None:
    first, second, third = (
        socket.create_connection(("127.0.0.1", small_server.port), source_address=("127.0.0.3", 0))
        for _ in range(3)
    )
    with held([first, second, third]):
        third.settimeout(5)
        assert third.recv(1024) == b""  # closed at once, nothing answered
        first.settimeout(0.5)
        with pytest.raises(TimeoutError):
            first.recv(1024)  # still open, waiting for its head
        assert get_from(small_server.base_url, "/healthz", "127.0.0.4").status_code == 200
    metrics = get_from(small_server.base_url, "/metrics", "127.0.0.6").text
    assert 'ledger_http_refused_total{reason="client_connections"} 1.0' in metrics


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(
    small_server: ServedProcess,
) -> None:
    proxy, elsewhere = "127.0.0.9", "127.0.0.4"
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    # The proxy's connections are not capped per peer (it carries every client); each
    # client behind it holds at most its share of requests in flight.
    with held([hold_a_request_in_flight(small_server.port, proxy, **forwarded) for _ in range(2)]):
        assert get_from(small_server.base_url, "/healthz", proxy, **forwarded).status_code == 503
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert get_from(small_server.base_url, "/healthz", proxy, **other).status_code == 200
        # From anyone else, the header names nobody: the peer is the client.
        assert (
            get_from(small_server.base_url, "/healthz", elsewhere, **forwarded).status_code == 200
        )


def test_a_request_with_too_many_headers_gets_431(server: ServedProcess) -> None:
    headers = {f"X-Extra-{index}": "1" for index in range(60)}
    response = httpx.get(f"{server.base_url}/healthz", headers=headers)
    assert (response.status_code, response.json()["error"]) == (431, "too_many_headers")


def test_a_body_sent_too_slowly_gets_408(server: ServedProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(
            b"POST /webhooks/cybersource HTTP/1.1\r\nHost: ledger\r\n"
            b"Content-Type: application/json\r\n"
            + f"v-c-signature: {signed_headers(b'{}')['v-c-signature']}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        connection.settimeout(5)
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer


ABUSIVE_PEER = "127.0.0.2"  # loopback on Linux, and another peer than 127.0.0.1
HALF_HEAD_CONNECTIONS = 260  # more than the 200 slots in all
RECONNECT_PAUSE_SECONDS = 0.25
RECONNECTIONS_PER_CONNECTION_MAX = 80
VALID_SENDERS = 4
VALID_DELIVERIES_PER_SENDER = 50
ACCEPTED_SHARE_MIN = 0.99


async def hold_a_half_head(port: int, stop: asyncio.Event) -> int:
    """Keep one connection open from the abusive peer with half a request head sent; when
    the server closes it, open another, until ``stop``. The connections made."""
    made = 0
    for _ in range(RECONNECTIONS_PER_CONNECTION_MAX):
        made += 1
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(ABUSIVE_PEER, 0)
            )
        except OSError:
            await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
            continue
        try:
            writer.write(b"POST /webhooks/cybersource HTTP/1.1\r\nHost: ledger\r\n")
            closed = asyncio.ensure_future(reader.read(4096))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            stopped.cancel()
        except ConnectionError:
            pass
        finally:
            writer.close()
        if stop.is_set():
            break
        await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
    return made


async def deliver_from_another_peer(base_url: str, sender: int) -> list[int]:
    statuses = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for index in range(VALID_DELIVERIES_PER_SENDER):
            body = encode(invoice_notification(f"INV-{sender}-{index}"))
            try:
                response = await client.post(
                    WEBHOOK_PATH, content=body, headers=signed_headers(body)
                )
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(0)
    return statuses


def test_one_peer_holding_half_heads_cannot_keep_another_peers_deliveries_out(
    tmp_path: Path,
) -> None:
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_HTTP_TRUSTED_PROXIES": "",  # both peers are clients
        }
        with serving_process(environment, tmp_path / "serve.log") as served:

            async def scenario() -> tuple[list[int], list[int]]:
                stop = asyncio.Event()
                abusers = [
                    asyncio.create_task(hold_a_half_head(served.port, stop))
                    for _ in range(HALF_HEAD_CONNECTIONS)
                ]
                await asyncio.sleep(1.0)  # the abusive peer holds all it can
                try:
                    senders = [
                        deliver_from_another_peer(served.base_url, sender)
                        for sender in range(VALID_SENDERS)
                    ]
                    statuses = [s for batch in await asyncio.gather(*senders) for s in batch]
                finally:
                    stop.set()
                return statuses, list(await asyncio.gather(*abusers))

            statuses, connections_made = asyncio.run(scenario())
            metrics = httpx.get(f"{served.base_url}/metrics").text
    accepted = statuses.count(200)
    assert accepted >= ACCEPTED_SHARE_MIN * len(statuses), sorted(set(statuses))
    assert sum(connections_made) > HALF_HEAD_CONNECTIONS  # it kept reconnecting
    assert 'ledger_http_refused_total{reason="client_connections"}' in metrics
