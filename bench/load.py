"""A lean HTTP/1.1 load generator: N keep-alive connections, each sending requests in turn.

It writes requests and parses responses on raw asyncio streams because a full client library
costs several times more CPU per request, and on a 2-core machine the generator's CPU is taken
from the servers it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RequestFactory = Callable[[], tuple[bytes, dict[str, str]]]
RESPONSE_TIMEOUT_SECONDS = 30.0


@dataclass
class LoadResult:
    latencies_seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_seconds) / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_seconds)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _send(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> int:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _timed_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    path: str,
    make_request: RequestFactory,
    result: LoadResult,
) -> None:
    body, headers = make_request()
    started = time.perf_counter()
    status = await asyncio.wait_for(
        _send(reader, writer, host, path, body, headers), RESPONSE_TIMEOUT_SECONDS
    )
    result.latencies_seconds.append(time.perf_counter() - started)
    result.statuses[status] = result.statuses.get(status, 0) + 1


async def _paced_connection(
    host: str,
    port: int,
    path: str,
    make_request: RequestFactory,
    start: float,
    interval: float,
    count: int,
    result: LoadResult,
) -> None:
    """Send ``count`` requests, one every ``interval`` seconds from ``start`` (no catch-up burst
    beyond falling behind: a late request goes at once, the next keeps the schedule)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
            await _timed_request(reader, writer, f"{host}:{port}", path, make_request, result)
    finally:
        writer.close()


async def run_paced_load(
    host: str,
    port: int,
    path: str,
    make_request: RequestFactory,
    *,
    rate_per_second: float,
    duration_seconds: float,
    connections: int = 16,
) -> LoadResult:
    """A steady offered load: ``connections`` connections sharing ``rate_per_second``."""
    result = LoadResult()
    started = time.perf_counter()
    per_connection = int(rate_per_second * duration_seconds / connections)
    interval = connections / rate_per_second
    await asyncio.gather(
        *(
            _paced_connection(
                host, port, path, make_request, started + index * interval / connections,
                interval, per_connection, result,
            )
            for index in range(connections)
        )
    )  # fmt: skip
    result.elapsed_seconds = time.perf_counter() - started
    return result


async def _connection(
    host: str,
    port: int,
    path: str,
    make_request: RequestFactory,
    deadline: float,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            await _timed_request(reader, writer, f"{host}:{port}", path, make_request, result)
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    path: str,
    make_request: RequestFactory,
    *,
    connections: int,
    duration_seconds: float,
) -> LoadResult:
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + duration_seconds
    await asyncio.gather(
        *(_connection(host, port, path, make_request, deadline, result) for _ in range(connections))
    )
    result.elapsed_seconds = time.perf_counter() - started
    return result
