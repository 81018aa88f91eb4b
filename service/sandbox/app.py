"""The sandbox's HTTP API: Cybersource's invoicing and webhook-setup endpoints and the
Transaction Details API for its invoices' payments, each checking the HTTP Signature or the JWT
and serving the organization its ``v-c-merchant-id`` names (``signed_endpoints.py``), plus unsigned
``/sandbox`` endpoints for what customers and Cybersource do on their own (pay, hold a payment
for review, remind), to inject 429/502 answers on demand, and to read the delivery log
(``sandbox_endpoints.py``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.sandbox.deliveries import WebhookDeliveries
from service.sandbox.documents import refusal
from service.sandbox.errors import SandboxRefusal
from service.sandbox.options import SandboxOptions
from service.sandbox.sandbox_endpoints import SandboxEndpoints
from service.sandbox.server import (
    DEFAULT_OPTIONS,
    ExactJSONResponse,
    SandboxMerchant,
    SandboxServer,
)
from service.sandbox.signed_endpoints import SignedEndpoints


class CybersourceSandbox(SandboxServer):
    def routes(self) -> list[Route]:
        return [*SignedEndpoints(self).routes(), *SandboxEndpoints(self).routes()]

    def app(self) -> Starlette:
        app = Starlette(
            routes=self.routes(),
            exception_handlers={SandboxRefusal: self._refused},
            lifespan=self._lifespan,
        )
        app.state.sandbox = self
        return app

    async def _refused(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, SandboxRefusal)
        return ExactJSONResponse(refusal(error, self.now()), status_code=error.status_code)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self.deliveries is not None:
                await self.deliveries.close()


def create_sandbox_app(
    merchants: Sequence[SandboxMerchant],
    *,
    organization_ids: Iterable[str] = (),
    deliveries: WebhookDeliveries | None = None,
    clock: Callable[[], float] = time.time,
    options: SandboxOptions = DEFAULT_OPTIONS,
) -> Starlette:
    """A local Cybersource for these keys; see ``CybersourceSandbox``."""
    sandbox = CybersourceSandbox(
        merchants,
        organization_ids=organization_ids,
        deliveries=deliveries,
        clock=clock,
        options=options,
    )
    return sandbox.app()
