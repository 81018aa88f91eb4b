"""The /console pages: server-rendered HTML over the same reads as /v1, no build step.

Endpoints authorize through the /v1 authorizer and console sessions (see ``access``), read
through the same
queries and document functions as /v1 (so a page and the API show the same figures), and
render Jinja templates with autoescaping on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import jinja2
import structlog
from pydantic import BaseModel
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from service.api import parameters as p
from service.api.auth import ApiAuthorizer, AuthSurface, Caller, Scope, require_scope
from service.api.deliveries import decode_cursor, detail, encode_cursor, summary
from service.api.documents import event_document, invoice_from_row, report_items
from service.api.errors import ApiError
from service.console import access
from service.console.charts import BarChart, bar_chart
from service.console.delivery_outcomes import DeliveryOutcomes
from service.domain.events import RecordedEvent
from service.domain.identity import invoices_in_stream
from service.domain.invoice import corrected_by
from service.domain.status import InvoiceStatus
from service.ingest.corrections import CorrectionRefused, DeliveryCorrections
from service.ingest.replay import DeliveryReplayer, NotReplayable, UnknownDelivery
from service.projections.queries import AGING_BUCKETS, InvoiceFilters, InvoiceQueries, PageKey
from service.store.console_sessions import SqlConsoleSessions
from service.store.delivery_log import DeliveryFilters, SqlDeliveryLog
from service.store.event_store import EventStore
from service.store.read_models import SqlReadModelStore
from service.store.schema import InboxOutcome, ReplayResult

log = structlog.get_logger("service.console")

DELIVERIES_PAGE_SIZE = 50
INVOICES_PAGE_SIZE = 50
FILTER_LENGTH_MAX = 200
# The console's forms hold a token and a few short fields; nothing larger is read.
FORM_BYTES_MAX = 8 * 1024
FORM_FIELDS_MAX = 10
COLLECTION_PERIODS = {"day": 31, "week": 26 * 7, "month": 366}  # default range, in days
OUTCOME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
OUTCOME_WINDOW_LABELS = {
    "24h": "the last 24 hours",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
    "all": "all time",
}
AGING_LABELS = {
    "current": "Current",
    "days1To30": "1-30 days",
    "days31To60": "31-60 days",
    "days61To90": "61-90 days",
    "over90": "Over 90 days",
    "noDueDate": "No due date",
}
# The pages show personal data (payer names, bodies): nothing is cached, framed or leaked
# through a Referer, and the page loads nothing but its own stylesheet.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Chromium send Origin: null
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

Page = Callable[[Request, Caller], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ConsoleSources:
    """What the pages read and do, built once by the app and shared with /v1."""

    queries: InvoiceQueries
    event_store: EventStore
    read_models: SqlReadModelStore
    delivery_log: SqlDeliveryLog
    delivery_outcomes: DeliveryOutcomes
    replayer: DeliveryReplayer
    corrections: DeliveryCorrections
    sessions: SqlConsoleSessions
    items_per_delivery_max: int


class InvalidInput(Exception):
    """A filter the page cannot use; shown beside the form, answered with 400."""


class FormTooLarge(Exception):
    """A form without a length, or longer than any the console sends."""


async def small_form(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > FORM_BYTES_MAX:
        raise FormTooLarge
    return await request.form(max_files=0, max_fields=FORM_FIELDS_MAX)


class Console:
    def __init__(self, sources: ConsoleSources, authorizer: ApiAuthorizer) -> None:
        self._sources = sources
        self._queries = sources.queries
        self._events = sources.event_store
        self._read_models = sources.read_models
        self._authorizer = authorizer
        self._sessions = sources.sessions
        self._form_tokens = access.FormTokens()
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("service.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def routes(self) -> list[Route]:
        return [
            Route("/console", self._page(self.overview), methods=["GET"]),
            Route("/console/deliveries", self._page(self.deliveries), methods=["GET"]),
            Route(
                "/console/deliveries/{deliveryId:int}",
                self._page(self.delivery),
                methods=["GET"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}/replay",
                self._bounded(self._page(self.replay, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}/corrections",
                self._bounded(self._page(self.correct, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route("/console/invoices", self._page(self.invoices), methods=["GET"]),
            Route("/console/login", self._bounded(self.login), methods=["GET", "POST"]),
            Route("/console/logout", self._bounded(self.logout), methods=["POST"]),
            Route("/console/console.css", self.stylesheet, methods=["GET"]),
        ]

    # Rendering and access

    def _render(
        self,
        request: Request,
        template: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> Response:
        html = self._templates.get_template(template).render(
            path=request.url.path,
            form_token=self._form_tokens.issue(request),
            signed_in=access.session_id(request) is not None,
            **context,
        )
        return HTMLResponse(
            html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
        )

    async def _caller(self, request: Request, scope: Scope) -> Caller:
        """Who asks: a script's bearer token, checked as on /v1; the loopback or anonymous
        modes, where nobody signs in; otherwise the session the cookie names, while it lasts
        and while its token is still configured with the same scope."""
        authorizer = self._authorizer
        if not authorizer.uses_tokens or access.bearer_token(request) is not None:
            return authorizer.check(request, scope, AuthSurface.CONSOLE)
        session_id = access.session_id(request)
        session = None if session_id is None else await self._sessions.find_valid(session_id)
        caller = None
        if session is not None and session.scope in set(Scope):
            caller = authorizer.caller_named(session.caller_name, Scope(session.scope))
        if caller is None:
            raise ApiError(401, "unauthorized", "sign in: no session, or it has ended")
        return require_scope(caller, scope)

    def _page(self, page: Page, scope: Scope = Scope.READ) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                caller = await self._caller(request, scope)
                if request.method == "POST":
                    form = await small_form(request)
                    if not self._form_accepted(request, form.get(access.FORM_TOKEN_FIELD)):
                        raise ApiError(
                            403, "bad_form_token", "this form did not come from the console's page"
                        )
                return await page(request, caller)
            except UnknownDelivery:
                return self._render(
                    request, "error.html", 404, title="Unknown delivery",
                    error=ApiError(404, "unknown_delivery", "no delivery with this id"),
                )  # fmt: skip
            except ApiError as error:
                if error.status_code == 401 and request.method == "GET":
                    query = f"?{request.url.query}" if request.url.query else ""
                    target = request.url.path + query
                    return _see_other("/console/login?" + urlencode({"next": target}))
                return self._render(
                    request, "error.html", error.status_code, _retry_after(error),
                    title="Not allowed", error=error,
                )  # fmt: skip
            except InvalidInput as problem:
                return self._render(
                    request, "error.html", 400, title="Invalid input",
                    error=ApiError(400, "bad_parameter", str(problem)),
                )  # fmt: skip

        return endpoint

    def _bounded(self, page: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                return await page(request)
            except FormTooLarge:
                return self._render(
                    request, "error.html", 413, title="Form too large",
                    error=ApiError(413, "form_too_large", f"at most {FORM_BYTES_MAX} bytes"),
                )  # fmt: skip

        return endpoint

    async def login(self, request: Request) -> Response:
        """Sign-in: a token from a form of this origin opens a session; the cookie names it."""
        target = _local_target(request.query_params.get("next"))
        if request.method == "GET":
            if not self._authorizer.uses_tokens:
                return _see_other(target)  # loopback or anonymous mode: nobody signs in
            return self._render(request, "login.html", title="Sign in", next=target, problem=None)
        form = await small_form(request)
        target = _local_target(str(form.get("next", "")))
        if not access.from_console_origin(request):
            return self._render(
                request, "error.html", 403, title="Not allowed",
                error=ApiError(403, "cross_origin", "a sign-in from another site's page"),
            )  # fmt: skip
        if not self._authorizer.uses_tokens:
            return _see_other(target)
        try:
            caller = self._authorizer.check_token(
                request, str(form.get("token", "")), AuthSurface.CONSOLE_SIGN_IN
            )
        except ApiError as refused:
            return self._render(
                request, "login.html", refused.status_code, _retry_after(refused),
                title="Sign in", next=target, problem=_sign_in_problem(refused),
            )  # fmt: skip
        replaced = access.session_id(request)
        if replaced is not None:
            await self._sessions.revoke(replaced)
        await self._sessions.prune_expired()
        session_id = await self._sessions.create(caller.name, caller.scope.value)
        log.info("console.signed_in", caller=caller.name, scope=caller.scope.value)
        response = _see_other(target)
        response.set_cookie(
            access.SESSION_COOKIE,
            session_id,
            max_age=self._sessions.lifetime_seconds,
            path="/console",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(access.LEGACY_TOKEN_COOKIE, path="/console")
        return response

    async def logout(self, request: Request) -> Response:
        """Sign-out: the session ends on the server, so its cookie, replayed, opens nothing."""
        form = await small_form(request)
        if not self._form_accepted(request, form.get(access.FORM_TOKEN_FIELD)):
            return self._render(
                request, "error.html", 403, title="Not allowed",
                error=ApiError(403, "bad_form_token", "this form did not come from the console"),
            )  # fmt: skip
        session_id = access.session_id(request)
        if session_id is not None and self._authorizer.uses_tokens:
            ended = await self._sessions.revoke(session_id)
            log.info("console.signed_out", session_was_open=ended)
        response = _see_other("/console/login")
        response.delete_cookie(access.SESSION_COOKIE, path="/console")
        response.delete_cookie(access.LEGACY_TOKEN_COOKIE, path="/console")
        return response

    def _form_accepted(self, request: Request, presented: object) -> bool:
        return self._form_tokens.accepts(request, presented if isinstance(presented, str) else None)

    async def stylesheet(self, request: Request) -> Response:
        css = self._templates.loader.get_source(self._templates, "console.css")[0]  # type: ignore[union-attr]
        headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
        return Response(css, media_type="text/css", headers=headers)

    # Pages

    async def overview(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        today = datetime.now(UTC).date()
        as_of = _day(query.get("asOf"), "asOf") or today
        interval = query.get("interval") or "month"
        if interval not in COLLECTION_PERIODS:
            raise InvalidInput("interval: must be day, week or month")
        collections_to = _day(query.get("to"), "to") or today
        collections_from = _day(query.get("from"), "from") or (
            collections_to - timedelta(days=COLLECTION_PERIODS[interval])
        )
        if collections_from > collections_to:
            raise InvalidInput("from: must not be after to")
        if (collections_to - collections_from).days > p.COLLECTION_DAYS_MAX:
            raise InvalidInput(f"from, to: at most {p.COLLECTION_DAYS_MAX} days apart")
        window = query.get("outcomes") or "7d"
        if window not in (*OUTCOME_WINDOWS, "all"):
            raise InvalidInput("outcomes: must be 24h, 7d, 30d or all")
        organization = _text(query.get("organizationId"), "organizationId")

        aging = report_items(
            await self._queries.aging(as_of, organization),
            {**{name: name for name in AGING_BUCKETS}, "provisional_balance": "provisional"},
        )
        collections = report_items(
            await self._queries.collections(
                collections_from, collections_to, interval, organization  # type: ignore[arg-type]
            ),
            {"amount": "amount", "provisional_amount": "provisional"},
        )
        since = None if window == "all" else datetime.now(UTC) - OUTCOME_WINDOWS[window]
        outcomes = await self._sources.delivery_outcomes.counts(since)
        lag = await self._projection_lag()
        return self._render(
            request,
            "overview.html",
            title="Overview",
            as_of=as_of.isoformat(),
            interval=interval,
            collections_from=collections_from.isoformat(),
            collections_to=collections_to.isoformat(),
            window=window,
            windows=[*OUTCOME_WINDOWS, "all"],
            window_labels=OUTCOME_WINDOW_LABELS,
            organization=organization or "",
            aging_charts=_aging_charts(aging),
            aging_incomplete=[item["currency"] for item in aging if item["incomplete"]],
            aging_provisional=[
                f"{item['provisional']} {item['currency']}" for item in _provisional(aging)
            ],
            collection_charts=_collection_charts(collections),
            collections_incomplete=[
                f"{item['period']} {item['currency']}" for item in collections if item["incomplete"]
            ],
            collections_provisional=[
                f"{item['period']} {item['provisional']} {item['currency']}"
                for item in _provisional(collections)
            ],
            outcomes_chart=bar_chart(
                "delivery-outcomes",
                "Deliveries by outcome",
                "deliveries",
                [(name, name, count, str(count)) for name, count in outcomes.items()],
            ),
            lag=lag,
        )

    async def _projection_lag(self) -> dict[str, Any]:
        """How far the read models are behind the event store, in events and in seconds."""
        recorded = await self._events.highest_position()
        projected = await self._read_models.checkpoint()
        behind_seconds = 0.0
        if recorded > projected:
            oldest = await self._events.read_after(projected, 1)
            if oldest:
                behind_seconds = (datetime.now(UTC) - oldest[0].recorded_at).total_seconds()
        return {
            "recorded": recorded,
            "projected": projected,
            "events": max(recorded - projected, 0),
            "seconds": round(max(behind_seconds, 0.0), 1),
        }

    async def deliveries(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        outcome_text = query.get("outcome") or None
        if outcome_text is not None and outcome_text not in set(InboxOutcome):
            raise InvalidInput("outcome: must be one of " + ", ".join(InboxOutcome))
        filters = DeliveryFilters(
            outcome=InboxOutcome(outcome_text) if outcome_text else None,
            event_type=_text(query.get("eventType"), "eventType"),
            organization_id=_text(query.get("organizationId"), "organizationId"),
            notification_id=_text(query.get("notificationId"), "notificationId"),
            received_from=_instant_or_day(query.get("receivedFrom"), "receivedFrom", end=False),
            received_to=_instant_or_day(query.get("receivedTo"), "receivedTo", end=True),
            reason_prefix=_text(query.get("reason"), "reason"),
        )
        cursor = _text(query.get("cursor"), "cursor")
        try:
            before = decode_cursor(cursor) if cursor else None
        except ApiError:
            raise InvalidInput("cursor: is not a link this console made") from None
        log = self._sources.delivery_log
        rows = await log.deliveries(filters, DELIVERIES_PAGE_SIZE, before)
        replays = await log.replays([row.delivery_id for row in rows])
        older = None
        if len(rows) == DELIVERIES_PAGE_SIZE:
            kept = {name: value for name, value in query.items() if name != "cursor" and value}
            older = "?" + urlencode({**kept, "cursor": encode_cursor(rows[-1].delivery_id)})
        return self._render(
            request,
            "deliveries.html",
            title="Deliveries",
            deliveries=[
                _document(summary(row, replays[row.delivery_id])) for row in rows
            ],
            outcomes=list(InboxOutcome),
            filters={name: query.get(name, "") for name in _DELIVERY_FILTERS},
            older=older,
        )

    async def delivery(self, request: Request, caller: Caller) -> Response:
        delivery_id = request.path_params["deliveryId"]
        return await self._delivery_page(request, caller, delivery_id)

    async def _delivery_page(
        self,
        request: Request,
        caller: Caller,
        delivery_id: int,
        *,
        notice: str | None = None,
        notice_failed: bool = False,
        problem: str | None = None,
        status_code: int = 200,
    ) -> Response:
        sources = self._sources
        # Read with its body: the body names the facts it states (shown to operators only).
        row = await sources.delivery_log.delivery(delivery_id, with_body=True)
        if row is None:
            raise UnknownDelivery(delivery_id)
        document = await detail(
            row,
            sources.delivery_log,
            sources.corrections,
            items_per_delivery_max=sources.items_per_delivery_max,
            with_body=caller.is_operator,
        )
        shown = _document(document)
        return self._render(
            request,
            "delivery.html",
            status_code,
            title=f"Delivery {delivery_id}",
            delivery=shown,
            body=_body_text(shown["body"]),
            operator=caller.is_operator,
            notice=notice,
            notice_failed=notice_failed,
            problem=problem,
        )

    async def replay(self, request: Request, caller: Caller) -> Response:
        """Replays with the same function as /v1, then shows the delivery and its result."""
        delivery_id = request.path_params["deliveryId"]
        try:
            outcome = await self._sources.replayer.replay(delivery_id, caller.name)
        except NotReplayable as refused:
            return await self._delivery_page(
                request, caller, delivery_id, problem=refused.detail, status_code=409
            )
        positions = ", ".join(str(position) for position in outcome.positions)
        notice = f"Replayed: {outcome.result.value}"
        if positions:
            notice += f" (positions {positions})"
        if outcome.reason:
            notice += f": {outcome.reason}"
        # A replay that still does not read, or conflicts, did not do what was asked.
        failed = outcome.result in (ReplayResult.UNREADABLE, ReplayResult.CONFLICT)
        return await self._delivery_page(
            request, caller, delivery_id, notice=notice, notice_failed=failed
        )

    async def correct(self, request: Request, caller: Caller) -> Response:
        delivery_id = request.path_params["deliveryId"]
        form = await small_form(request)
        reason = str(form.get("reason", ""))
        try:
            outcome = await self._sources.corrections.correct(delivery_id, reason, caller.name)
        except CorrectionRefused as refused:
            return await self._delivery_page(
                request, caller, delivery_id, problem=refused.detail, status_code=409
            )
        positions = ", ".join(str(position) for position in outcome.positions)
        return await self._delivery_page(
            request, caller, delivery_id, notice=f"Correction recorded at positions {positions}"
        )

    async def invoices(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        number = _text(query.get("invoiceNumber"), "invoiceNumber")
        organization = _text(query.get("organizationId"), "organizationId")
        status = _text(query.get("status"), "status")
        if status is not None and status not in set(InvoiceStatus):
            raise InvalidInput("status: must be one of " + ", ".join(InvoiceStatus))
        context: dict[str, Any] = {
            "title": "Invoices",
            "statuses": list(InvoiceStatus),
            "search": {
                "invoiceNumber": number or "",
                "organizationId": organization or "",
                "status": status or "",
            },
            "found": [],
            "listed": [],
            "older": None,
        }
        if number is not None:
            rows = await self._queries.invoices_numbered(number, organization)
            trails = {
                key.organization_id: sorted(events, key=lambda event: event.position)
                for key, events in invoices_in_stream(
                    number, await self._events.read_stream(number)
                ).items()
            }
            context["found"] = [
                {
                    "invoice": _document(invoice_from_row(row)),
                    "events": _trail_view(trails.get(row.organization_id, [])),
                }
                for row in rows
            ]
        else:
            cursor = _text(query.get("cursor"), "cursor")
            try:
                before = p.decode_cursor(cursor) if cursor else None
            except ApiError:
                raise InvalidInput("cursor: is not a link this console made") from None
            rows = await self._queries.invoices(
                InvoiceFilters(organization_id=organization, status=status),
                INVOICES_PAGE_SIZE,
                before,
                newest_first=True,
            )
            context["listed"] = [_document(invoice_from_row(row)) for row in rows]
            if len(rows) == INVOICES_PAGE_SIZE:
                last = rows[-1]
                kept = {name: value for name, value in query.items() if name != "cursor" and value}
                key = PageKey(last.updated_at, last.organization_id, last.invoice_number)
                context["older"] = "?" + urlencode({**kept, "cursor": p.encode_cursor(key)})
        return self._render(request, "invoices.html", **context)


_DELIVERY_FILTERS = (
    "outcome",
    "eventType",
    "organizationId",
    "notificationId",
    "receivedFrom",
    "receivedTo",
    "reason",
)


def _document(model: BaseModel) -> dict[str, Any]:
    """An /v1 document as the API answers it (camelCase, JSON types), for a template."""
    document: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return document


def _provisional(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows part of whose money is provisional."""
    return [item for item in items if item["provisional"] and Decimal(item["provisional"])]


def _aging_charts(items: list[dict[str, Any]]) -> list[BarChart]:
    return [
        bar_chart(
            f"aging-{item['currency']}",
            f"Aging, {item['currency']}",
            item["currency"],
            [
                (bucket, AGING_LABELS[bucket], _amount(item[bucket]), item[bucket])
                for bucket in AGING_BUCKETS
            ],
        )
        for item in items
    ]


def _collection_charts(items: list[dict[str, Any]]) -> list[BarChart]:
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_currency.setdefault(item["currency"], []).append(item)
    return [
        bar_chart(
            f"collections-{currency}",
            f"Collections, {currency}",
            currency,
            [
                (item["period"], item["period"], _amount(item["amount"]), item["amount"])
                for item in rows
            ],
        )
        for currency, rows in sorted(by_currency.items())
    ]


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _trail_view(events: Sequence[RecordedEvent]) -> list[dict[str, Any]]:
    replaced = corrected_by(events)
    return [
        _event_view(_document(event_document(event, replaced.get(event.position))))
        for event in events
    ]


def _see_other(target: str) -> Response:
    """A 303 with the pages' security headers: it may carry a cookie change."""
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _event_view(document: Mapping[str, Any]) -> dict[str, Any]:
    return {**document, "dataText": json.dumps(document["data"], indent=2, sort_keys=True)}


def _body_text(text: str | None) -> str | None:
    """The stored body for an operator; JSON is indented, anything else shown as it came."""
    if text is None:
        return None
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        pretty.encode("utf-8")  # an escaped lone surrogate cannot be shown decoded
    except ValueError:  # UnicodeEncodeError included
        return text
    return pretty


def _text(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > FILTER_LENGTH_MAX:
        raise InvalidInput(f"{name}: at most {FILTER_LENGTH_MAX} characters")
    return value.strip()


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return p.parse_day(value)
    except ValueError as problem:
        raise InvalidInput(f"{name}: {problem}") from None


def _instant_or_day(value: str | None, name: str, *, end: bool) -> datetime | None:
    """An instant, or a day: its start, or (``end``) the start of the next, as an exclusive end."""
    if not value:
        return None
    if "T" in value or "t" in value:
        try:
            return p.parse_instant(value)
        except ValueError as problem:
            raise InvalidInput(f"{name}: {problem}") from None
    day = _day(value, name)
    assert day is not None
    start = datetime.combine(day, time(), UTC)
    return start + timedelta(days=1) if end and day < date.max else start


def _local_target(target: str | None) -> str:
    """Where to go after signing in: a console path of this site only, never another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


def _retry_after(error: ApiError) -> dict[str, str]:
    """The Retry-After of a throttled answer, for the page that tells a person to wait."""
    return {name: value for name, value in error.headers.items() if name == "Retry-After"}


def _sign_in_problem(refused: ApiError) -> str:
    if refused.status_code == 429:
        wait = refused.headers.get("Retry-After", "a few")
        return f"Too many wrong tokens from this address: try again in {wait} seconds."
    return "That token is not valid."
