"""The console's frame: its sources, templates, security headers, sign-in and sign-out,
and the wrapper that authorizes each page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from service.domain.identity import OrganizationScope
from service.fronts.auth import (
    ApiAuthorizer,
    AuthSurface,
    Caller,
    Scope,
    require_every_merchant,
    require_scope,
)
from service.fronts.console import access, zones
from service.fronts.console.inputs import (
    FORM_BYTES_MAX,
    FormTooLarge,
    InvalidInput,
    local_target,
    small_form,
    text_filter,
)
from service.fronts.console.views import (
    SECURITY_HEADERS,
    money,
    retry_after_headers,
    see_other,
    sign_in_problem,
)
from service.fronts.errors import ApiError
from service.fronts.merchant_scope import MerchantOrganizations, ScopeFilters
from service.ingest.corrections import DeliveryCorrections
from service.ingest.replay import DeliveryReplayer, UnknownDelivery
from service.ingest.resolutions import DeliveryResolver
from service.read.accounting import AccountingExports
from service.read.collected_payments import CollectedPayments
from service.read.delivery_outcomes import DeliveryOutcomes
from service.read.headline import FinanceHeadlines
from service.read.queries import InvoiceQueries
from service.read.sorted_invoices import SortedInvoices
from service.read.statements import CustomerStatements
from service.reconciler.client import CybersourceClient
from service.reconciler.reconciler import Reconciler
from service.store.console_sessions import SqlConsoleSessions
from service.store.delivery_log import SqlDeliveryLog
from service.store.events.base import EventStore
from service.store.views.read_model_store import SqlReadModelStore

log = structlog.get_logger("service.fronts.console")


DELIVERIES_PAGE_SIZE = 50
INVOICES_PAGE_SIZE = 50
COLLECTION_PERIODS = {"day": 31, "week": 26 * 7, "month": 366}  # default range, in days
OUTCOME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
OUTCOME_WINDOW_LABELS = {
    "24h": "the last 24 hours",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
    "all": "all time",
}
Page = Callable[[Request, Caller], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class ConsoleSources(Protocol):
    """What the pages read and do: the ledger's parts, built once (service/bootstrap.py) and
    shared with /v1."""

    @property
    def queries(self) -> InvoiceQueries: ...
    @property
    def event_store(self) -> EventStore: ...
    @property
    def read_models(self) -> SqlReadModelStore: ...
    @property
    def delivery_log(self) -> SqlDeliveryLog: ...
    @property
    def delivery_outcomes(self) -> DeliveryOutcomes: ...
    @property
    def replayer(self) -> DeliveryReplayer: ...
    @property
    def corrections(self) -> DeliveryCorrections: ...
    @property
    def resolver(self) -> DeliveryResolver: ...
    @property
    def headlines(self) -> FinanceHeadlines: ...
    @property
    def statements(self) -> CustomerStatements: ...
    @property
    def sorted_invoices(self) -> SortedInvoices: ...
    @property
    def collected_payments(self) -> CollectedPayments: ...
    @property
    def accounting_exports(self) -> AccountingExports: ...
    def cybersource_client(self, *, counted: bool = False) -> CybersourceClient: ...
    def reconciler(self, client: CybersourceClient, *, counted: bool = False) -> Reconciler: ...
    @property
    def console_sessions(self) -> SqlConsoleSessions: ...
    @property
    def items_per_delivery_max(self) -> int: ...


class ConsoleFrame:
    """What every console page stands on: sources, templates, sign-in, access per scope."""

    def __init__(
        self,
        sources: ConsoleSources,
        authorizer: ApiAuthorizer,
        merchants: MerchantOrganizations | None = None,
    ) -> None:
        self._sources = sources
        self._merchants = merchants or MerchantOrganizations({})
        self._queries = sources.queries
        self._events = sources.event_store
        self._read_models = sources.read_models
        self._authorizer = authorizer
        self._sessions = sources.console_sessions
        self._form_tokens = access.FormTokens()
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("service.fronts.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._templates.filters["money"] = money
        self._templates.filters["when"] = zones.when
        self._templates.filters["zoned"] = zones.zoned

    # Rendering and access

    def _render(
        self,
        request: Request,
        template: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> Response:
        zone = zones.requested_zone(request)
        html = self._templates.get_template(template).render(
            path=request.url.path,
            form_token=self._form_tokens.issue(request),
            signed_in=access.session_id(request) is not None,
            zone=zone,
            zone_name=zones.zone_name(zone),
            # The form that changes the zone, on a page read for an authorized caller only (it
            # keeps the page's other parameters).
            zone_form=request.method == "GET" and zones.zone_was_read(request),
            # The merchant filter's choices: those the caller sees, once it is authorized.
            merchants=getattr(request.state, "merchants", []),
            merchant=request.query_params.get("merchant", ""),
            kept_query=[
                (name, value)
                for name, value in request.query_params.multi_items()
                if name != zones.ZONE_PARAMETER and value
            ],
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

    def _organizations(self, request: Request, caller: Caller) -> OrganizationScope:
        """The organizations a page reads: its ``merchant`` and ``organizationId`` filters,
        within what the caller may see (a token limited to merchants: theirs)."""
        query = request.query_params
        asked = ScopeFilters(
            text_filter(query.get("merchant"), "merchant"),
            text_filter(query.get("organizationId"), "organizationId"),
        )
        return self._merchants.scope(caller, asked)

    def _page(
        self, page: Page, scope: Scope = Scope.READ, *, per_merchant: bool = False
    ) -> Endpoint:
        """``per_merchant``: the page reads through ``_organizations``, so a token limited to
        merchants may open it; other pages span merchants (deliveries, exports, operations)."""

        async def endpoint(request: Request) -> Response:
            try:
                caller = await self._caller(request, scope)
                if not per_merchant:
                    require_every_merchant(caller)
                request.state.merchants = self._merchants.visible_to(caller)
                request.state.zone = zones.zone_filter(
                    request.query_params.get(zones.ZONE_PARAMETER)
                )
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
                    return see_other("/console/login?" + urlencode({"next": target}))
                return self._render(
                    request, "error.html", error.status_code, retry_after_headers(error),
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
        target = local_target(request.query_params.get("next"))
        if request.method == "GET":
            if not self._authorizer.uses_tokens:
                return see_other(target)  # loopback or anonymous mode: nobody signs in
            return self._render(request, "login.html", title="Sign in", next=target, problem=None)
        form = await small_form(request)
        target = local_target(str(form.get("next", "")))
        if not access.from_console_origin(request):
            return self._render(
                request, "error.html", 403, title="Not allowed",
                error=ApiError(403, "cross_origin", "a sign-in from another site's page"),
            )  # fmt: skip
        if not self._authorizer.uses_tokens:
            return see_other(target)
        try:
            caller = self._authorizer.check_token(
                request, str(form.get("token", "")), AuthSurface.CONSOLE_SIGN_IN
            )
        except ApiError as refused:
            return self._render(
                request, "login.html", refused.status_code, retry_after_headers(refused),
                title="Sign in", next=target, problem=sign_in_problem(refused),
            )  # fmt: skip
        replaced = access.session_id(request)
        if replaced is not None:
            await self._sessions.revoke(replaced)
        await self._sessions.prune_expired()
        session_id = await self._sessions.create(caller.name, caller.scope.value)
        log.info("console.signed_in", caller=caller.name, scope=caller.scope.value)
        response = see_other(target)
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
        response = see_other("/console/login")
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
