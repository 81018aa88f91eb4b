"""A webhook endpoint on a real socket that keeps what it is sent, for sandbox tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import serving

DELIVERY_TIMEOUT_SECONDS = 10.0
Received = tuple[dict[str, str], dict[str, Any]]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []

    async def receive(self, request: Request) -> Response:
        self.received.append((dict(request.headers), json.loads(await request.body())))
        return Response(status_code=200)

    def wait_for(self, count: int) -> list[Received]:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} webhooks arrived"
            time.sleep(0.02)
        return self.received


@contextmanager
def receiving_webhooks() -> Iterator[tuple[Receiver, str]]:
    """The receiver and the URL to deliver to."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/webhooks", receiver.receive, methods=["POST"])])
    with serving(app) as url:
        yield receiver, f"{url}/webhooks"
