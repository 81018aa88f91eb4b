"""The /v1 endpoints. Each authorizes, validates, waits for ``minPosition`` if asked, reads,
and answers with the projection position it reflects in ``X-Ledger-Position``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
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
from service.api.errors import ApiError
from service.domain.invoice import fold_as_of
from service.projections.queries import InvoiceFilters, InvoiceQueries, PageKey
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
            "/v1/invoices/{invoiceNumber}": self.get_invoice,
            "/v1/invoices/{invoiceNumber}/events": self.invoice_events,
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
            if time.monotonic() >= deadline:
                raise ApiError(
                    503, "projection_behind",
                    f"the projection is at {position}, not yet at minPosition {minimum}",
                    {"Retry-After": "1", POSITION_HEADER: str(position)},
                )  # fmt: skip
            await asyncio.sleep(MIN_POSITION_POLL_SECONDS)

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        return p.query_dict(request.query_params.multi_items())

    async def get_invoice(self, request: Request, position: int) -> Any:
        number = request.path_params["invoiceNumber"]
        parameters = p.parse(p.InvoiceParameters, self._query(request))
        if parameters.as_of is None:
            row = await self._queries.invoice(number)
            if row is None:
                raise ApiError(404, "unknown_invoice", f"no invoice {number!r} in the ledger")
            return invoice_from_row(row)
        events = [e for e in await self._events.read_stream(number) if e.position <= position]
        known = [e for e in events if e.occurred_at <= parameters.as_of]
        if not known:
            raise ApiError(
                404,
                "unknown_invoice",
                f"no invoice {number!r} as of {parameters.as_of.isoformat()}",
            )
        state = fold_as_of(number, events, parameters.as_of)
        return invoice_from_state(state, max(e.recorded_at for e in known))

    async def list_invoices(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.InvoiceListParameters, self._query(request))
        after = p.decode_cursor(parameters.cursor) if parameters.cursor else None
        filters = InvoiceFilters(
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
            next_cursor = p.encode_cursor(PageKey(last.updated_at, last.invoice_number))
        return {"items": [invoice_from_row(row) for row in rows], "nextCursor": next_cursor}

    async def invoice_events(self, request: Request, position: int) -> Any:
        number = request.path_params["invoiceNumber"]
        p.parse(p.Consistency, self._query(request))
        events = await self._events.read_stream(number)
        if not events:
            raise ApiError(404, "unknown_invoice", f"no invoice {number!r} in the ledger")
        ordered = sorted(events, key=lambda event: event.position)
        return {"items": [event_document(event) for event in ordered]}

    async def outstanding(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.OutstandingParameters, self._query(request))
        rows = await self._queries.outstanding(parameters.as_of)
        return {"items": report_items(rows, {"balance": "balanceAmount"})}

    async def aging(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.AgingParameters, self._query(request))
        as_of = parameters.as_of or datetime.now(UTC).date()
        rows = await self._queries.aging(as_of)
        buckets = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")
        return {
            "asOf": as_of.isoformat(),
            "items": report_items(rows, {name: name for name in buckets}),
        }

    async def collections(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.CollectionsParameters, self._query(request))
        p.collection_range(parameters)
        rows = await self._queries.collections(
            parameters.start,
            parameters.end,
            parameters.interval,  # type: ignore[arg-type]
        )
        return {"items": report_items(rows, {"amount": "amount"})}

    async def status(self, request: Request, position: int) -> Any:
        p.parse(p.Consistency, self._query(request))
        rows = await self._queries.by_status()
        return {"items": report_items(rows, {"total": "totalAmount", "balance": "balanceAmount"})}
