"""A TCP proxy that can be cut and restored: a real network outage between service and database.

It can also play a PostgreSQL server that is starting up or shutting down: every new
connection gets the FATAL error 57P03 ("cannot connect now") that such a server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OutageProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cannot_connect_now = False

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)

    def cut(self) -> None:
        """Refuse new connections and reset every open one, as a dead database host would."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout=5)

    def answer_cannot_connect_now(self) -> None:
        """Reset open connections; answer every new one as a PostgreSQL starting up does."""
        self._cannot_connect_now = True
        self.cut()
        self.restore()

    def relay_again(self) -> None:
        self._cannot_connect_now = False

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        if self._cannot_connect_now:
            await _refuse_as_starting_up(client_reader, client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        self._writers.discard(writer)
        writer.transport.abort()


SSL_REQUEST_CODE = 80877103
STARTUP_MESSAGE_BYTES_MAX = 10_000


async def _refuse_as_starting_up(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The server side of PostgreSQL's startup: decline TLS, then FATAL 57P03."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
        length, code = struct.unpack("!ii", await reader.readexactly(8))
        if code == SSL_REQUEST_CODE:
            writer.write(b"N")
            length, code = struct.unpack("!ii", await reader.readexactly(8))
        if not 8 <= length <= STARTUP_MESSAGE_BYTES_MAX:
            raise ValueError("not a startup message")
        await reader.readexactly(length - 8)
        fields = b"".join(
            kind + text + b"\0"
            for kind, text in (
                (b"S", b"FATAL"),
                (b"V", b"FATAL"),
                (b"C", b"57P03"),
                (b"M", b"the database system is starting up"),
            )
        )
        body = fields + b"\0"
        writer.write(b"E" + struct.pack("!i", len(body) + 4) + body)
        await writer.drain()
    writer.close()


@contextmanager
def outage_proxy(target_host: str, target_port: int) -> Iterator[OutageProxy]:
    proxy = OutageProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
