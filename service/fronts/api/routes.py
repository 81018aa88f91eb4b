"""The /v1 endpoints. Each authorizes, validates, waits for ``minPosition`` if asked, reads,
and answers with the projection position it reflects in ``X-Ledger-Position``.

Every route declares its operations (parameters and answer models) for the generated OpenAPI
document; lists and reports also answer CSV, streamed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.domain.identity import OrganizationScope, invoices_in_stream, scope_includes
from service.domain.invoice import corrected_by, fold_as_of
from service.domain.reports import AGING_BUCKETS, period_days
from service.fronts.api import parameters as p
from service.fronts.api.contract import ApiRoute
from service.fronts.api.exports import answers_csv, csv_response, one_batch
from service.fronts.api.invoice_identity import organization_meant
from service.fronts.api.operations import OPERATIONS, POSITION_HEADER
from service.fronts.auth import ApiAuthorizer
from service.fronts.errors import ApiError, bad_parameter
from service.fronts.merchant_scope import MerchantOrganizations, ScopeRequest
from service.read import models
from service.read.cursors import encode_page_cursor
from service.read.documents import (
    as_json,
    event_document,
    invoice_at_day_end,
    invoice_document,
    invoice_from_row,
    report_items,
)
from service.read.invoice_pages import AgingBucketFilter, InvoiceFilters, PageKey
from service.read.queries import InvoiceQueries
from service.store.events.base import EventStore
from service.store.views.read_model_store import SqlReadModelStore

MIN_POSITION_WAIT_SECONDS = 10.0
MIN_POSITION_POLL_SECONDS = 0.05
# A CSV export of invoices stops with an error past this many rows (the client sees a cut
# answer, never a short one that looks whole).
EXPORT_ROWS_MAX = 10_000_000
# Columns an aging CSV leaves out unless grouped by customer.
CUSTOMER_FIELDS = ("organizationId", "customerName", "customerEmail")

# A handler is given the projection position it may answer at, or UNREAD_POSITION when it
# reads the position with its answer and returns both (AtPosition), in one statement.
UNREAD_POSITION = -1


@dataclass(frozen=True, slots=True)
class AtPosition:
    answer: models.Document | Response
    position: int


Endpoint = Callable[[Request, int], Awaitable[models.Document | Response | AtPosition]]


class QueryApi:
    def __init__(
        self,
        queries: InvoiceQueries,
        event_store: EventStore,
        read_models: SqlReadModelStore,
        authorizer: ApiAuthorizer,
        merchants: MerchantOrganizations | None = None,
    ) -> None:
        self._queries = queries
        self._events = event_store
        self._read_models = read_models
        self._authorizer = authorizer
        self._merchants = merchants or MerchantOrganizations({})

    def routes(self) -> list[ApiRoute]:
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
        # One invoice is read with the position it reflects, unless minPosition is awaited.
        reads_position = {"/v1/invoices/{invoicePath:path}"}
        return [
            ApiRoute(
                path,
                self._endpoint(handler, reads_position=path in reads_position),
                methods=["GET"],
                operations=OPERATIONS[path],
            )
            for path, handler in endpoints.items()
        ]

    def _endpoint(
        self, handler: Endpoint, *, reads_position: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request.state.caller = self._authorizer.check(request)
            # minPosition is checked and awaited first; each handler validates the rest.
            query = self._query(request)
            wanted = {name: value for name, value in query.items() if name == "minPosition"}
            consistency = p.parse(p.Consistency, wanted)
            if reads_position and consistency.min_position is None:
                position = UNREAD_POSITION
            else:
                position = await self._position_at_least(consistency.min_position)
            answer = await handler(request, position)
            if isinstance(answer, AtPosition):
                position = answer.position
                answer = answer.answer
            assert position != UNREAD_POSITION
            if isinstance(answer, Response):
                answer.headers[POSITION_HEADER] = str(position)
                return answer
            return JSONResponse(as_json(answer), headers={POSITION_HEADER: str(position)})

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

    def _organizations(self, request: Request, parameters: ScopeRequest) -> OrganizationScope:
        """What the request asks for (merchant, organization) within what its caller sees."""
        return self._merchants.scope(request.state.caller, parameters)

    async def invoice_resource(self, request: Request, position: int) -> Any:
        path = p.invoice_path(request.scope)
        if path is None:
            raise ApiError(404, "unknown_path", "no resource at this path under /v1/invoices/")
        number, sub_resource = path
        if sub_resource == "events":
            return AtPosition(await self.invoice_events(request, number), await self._at(position))
        return await self.get_invoice(request, number, position)

    async def _at(self, position: int) -> int:
        return await self._read_models.checkpoint() if position == UNREAD_POSITION else position

    async def get_invoice(self, request: Request, number: str, position: int) -> AtPosition:
        parameters = p.parse(p.InvoiceParameters, self._query(request))
        answers_csv(request, None, csv_offered=False)
        named = parameters.organization_id
        organizations = self._organizations(request, parameters)
        if parameters.as_of is None:
            # One statement: the rows and the projection position they reflect.
            rows = await self._queries.invoices_numbered(number, organizations)
            organization = organization_meant(number, [r.organization_id for r in rows], named)
            [row] = [r for r in rows if r.organization_id == organization]
            return AtPosition(invoice_from_row(row), int(row.projection_position or 0))
        as_of = parameters.as_of
        position = await self._at(position)
        # The events the read model reflects, of the invoices this number has in each
        # organization, grouped as the projector groups them.
        stream = [e for e in await self._events.read_stream(number) if e.position <= position]
        existing = {
            key.organization_id: events
            for key, events in invoices_in_stream(number, stream).items()
            if any(event.occurred_at <= as_of for event in events)
            and scope_includes(organizations, key.organization_id)
        }
        organization = organization_meant(
            number, existing, named, when=f" as of {as_of.isoformat()}"
        )
        events = existing[organization]
        state = replace(fold_as_of(number, events, as_of), organization_id=organization)
        known = [e for e in events if e.occurred_at <= as_of]
        return AtPosition(invoice_document(state, max(e.recorded_at for e in known)), position)

    async def list_invoices(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.InvoiceListParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        after = p.decode_cursor(parameters.cursor) if parameters.cursor else None
        filters = InvoiceFilters(
            organizations=self._organizations(request, parameters),
            status=parameters.status.value if parameters.status else None,
            currency=parameters.currency,
            due_before=parameters.due_before,
            due_after=parameters.due_after,
            updated_since=parameters.updated_since,
            aging=_aging_filter(parameters),
            customer_name=parameters.customer_name,
            customer_email=parameters.customer_email,
        )
        if as_csv:
            pages_max = EXPORT_ROWS_MAX // parameters.limit + 1
            pages = self._queries.invoice_pages(filters, parameters.limit, after, pages_max)
            # The first page is read before the answer starts: a database that cannot be
            # reached is a 503 then, not a 200 cut short.
            first = await anext(pages, None)
            batches = _invoice_items(_chained(first, pages), filters.aging)
            return csv_response("invoices.csv", models.Invoice, batches, _no_cache())
        rows = await self._queries.invoices(filters, parameters.limit, after)
        next_cursor = None
        if len(rows) == parameters.limit:
            last = rows[-1]
            next_cursor = encode_page_cursor(
                PageKey(last.updated_at, last.organization_id, last.invoice_number)
            )
        return models.InvoicePage(
            items=[_listed(row, filters.aging) for row in rows], nextCursor=next_cursor
        )

    async def invoice_events(self, request: Request, number: str) -> Any:
        parameters = p.parse(p.InvoiceEventsParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        organizations = self._organizations(request, parameters)
        by_organization = {
            key.organization_id: events
            for key, events in invoices_in_stream(
                number, await self._events.read_stream(number)
            ).items()
            if scope_includes(organizations, key.organization_id)
        }
        organization = organization_meant(number, by_organization, parameters.organization_id)
        ordered = sorted(by_organization[organization], key=lambda event: event.position)
        replaced = corrected_by(ordered)
        document = models.Events(
            organizationId=organization,
            items=[event_document(event, replaced.get(event.position)) for event in ordered],
        )
        if as_csv:
            return _csv_of(document.items, models.Event, "invoice-events.csv")
        return document

    async def outstanding(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.OutstandingParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        organizations = self._organizations(request, parameters)
        rows = await self._queries.outstanding(parameters.as_of, organizations)
        items = [models.OutstandingRow(**item) for item in report_items(rows, OUTSTANDING_AMOUNTS)]
        if as_csv:
            return _csv_of(items, models.OutstandingRow, "outstanding.csv")
        return models.Outstanding(items=items)

    async def aging(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.AgingParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        zone = parameters.time_zone or p.UTC_ZONE
        as_of = parameters.as_of or datetime.now(zone).date()
        buckets = {name: name for name in AGING_BUCKETS}
        buckets["provisional_balance"] = "provisionalBalanceAmount"
        organizations = self._organizations(request, parameters)
        if parameters.group_by == "customer":
            rows = await self._queries.aging_by_customer(as_of, organizations, zone)
            renamed = {"organization_id": "organizationId", "customer_name": "customerName",
                       "customer_email": "customerEmail"}  # fmt: skip
            items = [
                models.AgingRow(**{renamed.get(key, key): value for key, value in item.items()})
                for item in report_items(rows, buckets)
            ]
        else:
            rows = await self._queries.aging(as_of, organizations, zone)
            items = [models.AgingRow(**item) for item in report_items(rows, buckets)]
        if as_csv:
            filename = f"aging-{as_of.isoformat()}.csv"
            if parameters.group_by == "customer":
                return _csv_of(items, models.AgingRow, filename)
            return _csv_of(items, models.AgingRow, filename, leave_out=CUSTOMER_FIELDS)
        return models.Aging(asOf=as_of, items=items)

    async def collections(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.CollectionsParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        p.collection_range(parameters)
        start, end = parameters.start, parameters.end
        rows = await self._queries.collections(
            start, end, parameters.interval, self._organizations(request, parameters),
            parameters.time_zone or p.UTC_ZONE,
        )  # fmt: skip
        items = []
        amounts = {"amount": "amount", "provisional_amount": "provisionalAmount"}
        for item in report_items(rows, amounts):
            first, last = period_days(item["period"], parameters.interval)
            items.append(
                models.CollectionsRow(**item, firstDay=max(first, start), lastDay=min(last, end))
            )
        if as_csv:
            name = f"collections-{start.isoformat()}-{end.isoformat()}.csv"
            return _csv_of(items, models.CollectionsRow, name)
        return models.Collections(items=items)

    async def status(self, request: Request, position: int) -> Any:
        parameters = p.parse(p.StatusParameters, self._query(request))
        as_csv = answers_csv(request, parameters.format, csv_offered=True)
        rows = await self._queries.by_status(self._organizations(request, parameters))
        items = [models.StatusRow(**item) for item in report_items(rows, STATUS_AMOUNTS)]
        if as_csv:
            return _csv_of(items, models.StatusRow, "status.csv")
        return models.StatusReport(items=items)


OUTSTANDING_AMOUNTS = {
    "balance": "balanceAmount", "provisional_balance": "provisionalBalanceAmount",
}  # fmt: skip
STATUS_AMOUNTS = {
    "total": "totalAmount", "balance": "balanceAmount",
    "provisional_total": "provisionalTotalAmount",
    "provisional_balance": "provisionalBalanceAmount",
}  # fmt: skip


def _aging_filter(parameters: p.InvoiceListParameters) -> AgingBucketFilter | None:
    zone = parameters.time_zone or p.UTC_ZONE
    if parameters.aging_bucket is None:
        if parameters.as_of is not None:
            raise bad_parameter("asOf", "is the day of an agingBucket: name the bucket too")
        return None
    as_of = parameters.as_of or datetime.now(zone).date()
    return AgingBucketFilter(parameters.aging_bucket, as_of, zone)


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": "no-store"}


async def _chained(
    first: Sequence[Any] | None, rest: AsyncIterator[Sequence[Any]]
) -> AsyncIterator[Sequence[Any]]:
    if first is not None:
        yield first
        async for page in rest:
            yield page


def _listed(row: Any, aging: AgingBucketFilter | None) -> models.Invoice:
    """An invoice as listed: as it stands, or behind an aging bucket as it stood then."""
    return invoice_from_row(row) if aging is None else invoice_at_day_end(row, aging.end_of_day)


async def _invoice_items(
    pages: AsyncIterator[Sequence[Any]], aging: AgingBucketFilter | None
) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    async for rows in pages:
        yield [as_json(_listed(row, aging)) for row in rows]


def _csv_of(
    items: Sequence[models.Document],
    model: type[models.Document],
    filename: str,
    leave_out: Sequence[str] = (),
) -> Response:
    batch = [as_json(item) for item in items]
    return csv_response(filename, model, one_batch(batch), _no_cache(), leave_out)
