"""Which routes each listening port serves, when ``serve`` listens on two.

The webhook port is the one the internet reaches (through the load balancer): it serves
``POST /webhooks/cybersource`` (with Cybersource's GET/HEAD health check) and the probes,
nothing else. The internal port serves everything but the webhook: ``/v1``, ``/console``,
``/metrics``, ``/openapi.json``, and the probes too. A path asked on the wrong port is
answered 404, as if it did not exist, so the public port says nothing of what is behind it.
With one port (``serve`` without ``--internal-port``) every route is served on it.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

WEBHOOK_PATH = "/webhooks/cybersource"
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
WEBHOOK_PORT_PATHS = PROBE_PATHS | {WEBHOOK_PATH}


class PortSplit:
    """ASGI middleware: requests are told apart by the local port they arrived on."""

    def __init__(self, app: ASGIApp, *, internal_port: int) -> None:
        self._app = app
        self._internal_port = internal_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._serves(scope):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _serves(self, scope: Scope) -> bool:
        server = scope.get("server")
        on_internal_port = server is not None and server[1] == self._internal_port
        path: str = scope["path"]
        if on_internal_port:
            return path != WEBHOOK_PATH
        return path in WEBHOOK_PORT_PATHS
