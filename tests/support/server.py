"""Serving an ASGI app with uvicorn on a real loopback socket, in a thread of its own."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from service.http_server import LedgerServer

STARTUP_TIMEOUT_SECONDS = 10.0
GRACE_SECONDS = 5.0


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Yield the base URL of ``app`` served over TCP; shut it down gracefully afterwards."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # The service's own server: background workers (projector, reconciler) start once the
    # socket listens, as under `serve`.
    server = LedgerServer(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
        ),
        getattr(getattr(app, "state", None), "workers", None),
        grace_seconds=GRACE_SECONDS,
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        listener.close()
