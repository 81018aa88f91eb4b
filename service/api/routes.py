"""The /v1 endpoints. Each authorizes, validates, waits for ``minPosition`` if asked, reads,
and answers with the projection position it reflects in ``X-Ledger-Position``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api import parameters as p
from service.api.auth import ApiAuthorizer
from service.api.documents import (
    event_document,
    invoice_from_row,
    invoice_from_state,
    report_items,
)
from service.api.errors import ApiError, bad_parameter
from service.api.invoice_identity import organization_meant
from service.domain.identity import invoices_in_stream
from service.domain.invoice import fold_as_of
from service.projections.queries import AGING_BUCKETS, InvoiceFilters, InvoiceQueries, PageKey
from service.store.event_store import SqlEventStore
from service.store.read_models import SqlReadModelStore

POSITION_HEADER = "X-Ledger-Position"
MIN_POSITION_WAIT_SECONDS = 10.0
MIN_POSITION_POLL_SECONDS = 0.05

Endpoint = Callable[[Request, int], Awaitable[Any]]


class QueryApi:
    def __init__(
        self,
        queries: InvoiceQueries,
        event_store: SqlEventStore,
        read_models: SqlReadModelStore,
        authorizer: ApiAuthorizer,
    ) -> None:
        self._queries = queries
        self._events = event_store
        self._read_models = read_models
        self._authorizer = authorizer

    def routes(self) -> list[Route]:
        endpoints: dict[str, Endpoint] = {
            "/v1/invoices": self.list_invoices,
            # One route for /v1/invoices/{invoiceNumber} and its /events, read from the raw
            # path: Starlette's {invoiceNumber} would not match a number containing "/".
            "/v1/invoices/{invoicePath:path}": self.invoice_resource,
            "/v1/reports/outstanding": self.outstanding,
            "/v1/reports/aging": self.aging,
            "/v1/reports/collections": self.collections,
            "/v1/reports/status": self.status,
        }
        return [
            Route(path, self._endpoint(handler), methods=["GET"])
            for path, handler in endpoints.items()
        ]

    def _endpoint(self, handler: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self._authorizer.check(request)
            # minPosition is checked and awaited first; each handler validates the rest.
            query = self._query(request)
            wanted = {name: value for name, value in query.items() if name == "minPosition"}
            consistency = p.parse(p.Consistency, wanted)
            position = await self._position_at_least(consistency.min_position)
            body = await handler(request, position)
            return JSONResponse(body, headers={POSITION_HEADER: str(position)})

        return endpoint

    async def _position_at_least(self, minimum: int | None) -> int:
        deadline = time.monotonic() + MIN_POSITION_WAIT_SECONDS
        while True:
            position = await self._read_models.checkpoint()
            if minimum is None or position >= minimum:
                return position
            # Every position a client can know was committed before it learnt it: a later
            # one names no event yet, and waiting for it would be a 503 the input caused.
            recorded = await self._events.highest_position()
            if minimum > recorded:
                raise bad_parameter(
                    "minPosition", f"no event is recorded at {minimum}: the last is at {recorded}"
                )
            if time.monotonic() >= deadline:
                raise ApiError(
                    503, "projection_behind",
                    f"the projection is at {position}, not yet at minPosition {minimum}",
                    {"Retry-After": "1", POSITION_HEADER: str(position)},
                )  # fmt: skip
            await asyncio.sleep(MIN_POSITION_POLL_SECONDS)

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        return p.query_dict(request.scope.get("query_string", b""))

    async def invoice_resource(self, request: Request, position: int) -> Any:
        path = p.invoice_path(request.scope)
        if path is None:
            raise ApiError(404, "unknown_path", "no resource at this path under /v1/invoices/")
        number, sub_resource = path
        if sub_resource == "events":
            return await self.invoice_events(request, number)
        return await self.get_invoice(request, number, position)

    async def get_invoice(self, request: Request, number: str, position: int) -> Any:
        parameters = p.parse(p.InvoiceParameters, self._query(request))
        named = parameters.organization_id
        if parameters.as_of is None:
            rows = await self._queries.invoices_numbered(number, named)
            organization = organization_meant(number, [r.organization_id for r in rows], named)
            [row] = [r for r in rows if r.organization_id == organization]
            return invoice_from_row(row)
        as_of = parameters.as_of
        # The events the read model reflects, of the invoices this number has in each
        # organization, grouped as the projector groups them.
        stream = [e for e in await self._events.read_stream(number) if e.position <= position]
        existing = {
            key.organization_id: events
            for key, events in invoices_in_stream(number, stream).items()
            if any(event.occurred_at <= as_of for event in events)
        }
        organization = organization_meant(
            number, existing, named, when=f" as of {as_of.isoformat()}"
        )
        events = existing[organization]
        state = replace(fold_as_of(number, events, as_of), organization_id=organization)
        known = [e for e in events if e.occurred_at <= as_of]
        return invoice_from_state(state, max(e.recorded_at for e in known))

    async def list_invoices(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.InvoiceListParameters, self._query(request))
        after = p.decode_cursor(parameters.cursor) if parameters.cursor else None
        filters = InvoiceFilters(
            organization_id=parameters.organization_id,
            status=parameters.status.value if parameters.status else None,
            currency=parameters.currency,
            due_before=parameters.due_before,
            due_after=parameters.due_after,
            updated_since=parameters.updated_since,
        )
        rows = await self._queries.invoices(filters, parameters.limit, after)
        next_cursor = None
        if len(rows) == parameters.limit:
            last = rows[-1]
            next_cursor = p.encode_cursor(
                PageKey(last.updated_at, last.organization_id, last.invoice_number)
            )
        return {"items": [invoice_from_row(row) for row in rows], "nextCursor": next_cursor}

    async def invoice_events(self, request: Request, number: str) -> Any:
        parameters = p.parse(p.InvoiceEventsParameters, self._query(request))
        by_organization = {
            key.organization_id: events
            for key, events in invoices_in_stream(
                number, await self._events.read_stream(number)
            ).items()
        }
        organization = organization_meant(number, by_organization, parameters.organization_id)
        ordered = sorted(by_organization[organization], key=lambda event: event.position)
        return {
            "organizationId": organization,
            "items": [event_document(event) for event in ordered],
        }

    async def outstanding(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.OutstandingParameters, self._query(request))
        rows = await self._queries.outstanding(parameters.as_of, parameters.organization_id)
        return {"items": report_items(rows, {"balance": "balanceAmount"})}

    async def aging(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.AgingParameters, self._query(request))
        as_of = parameters.as_of or datetime.now(UTC).date()
        rows = await self._queries.aging(as_of, parameters.organization_id)
        return {
            "asOf": as_of.isoformat(),
            "items": report_items(rows, {name: name for name in AGING_BUCKETS}),
        }

    async def collections(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.CollectionsParameters, self._query(request))
        p.collection_range(parameters)
        rows = await self._queries.collections(
            parameters.start,
            parameters.end,
            parameters.interval,  # type: ignore[arg-type]
            parameters.organization_id,
        )
        return {"items": report_items(rows, {"amount": "amount"})}

    async def status(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.StatusParameters, self._query(request))
        rows = await self._queries.by_status(parameters.organization_id)
        return {"items": report_items(rows, {"total": "totalAmount", "balance": "balanceAmount"})}
