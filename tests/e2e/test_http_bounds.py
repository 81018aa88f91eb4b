"""What one client can hold of the server is bounded, and valid deliveries keep being
acknowledged while clients abuse it. The real ``serve`` process, over sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
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


def test_connections_beyond_the_limit_are_answered_503(tmp_path: Path) -> None:
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_HTTP_MAX_CONNECTIONS": "5",
        }
        with serving_process(environment, tmp_path / "serve.log") as served:
            idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(5)]
            try:
                time.sleep(0.2)
                assert httpx.get(f"{served.base_url}/healthz").status_code == 503
            finally:
                for connection in idle:
                    connection.close()
            time.sleep(0.2)
            assert httpx.get(f"{served.base_url}/healthz").status_code == 200


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
