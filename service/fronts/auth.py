"""Bearer tokens for /v1, compared in constant time; loopback-only when none are configured.

Two scopes: a read token reads invoices, reports and the delivery log without bodies; an
operator token may also read delivery bodies, replay deliveries and record corrections.
Without any token configured, loopback clients have both scopes (local use, ``make run``).

That local mode must not be usable by a web page the local user opens: a page cannot read
another origin's answers, but it can send requests, and through DNS rebinding a page's own
name can point at 127.0.0.1. So without tokens every request must name a loopback host with
the served port (``Host``: otherwise 421, nothing read), and every state-changing request
must come from the same origin (``Origin`` absent or this server's, ``Sec-Fetch-Site``
absent, ``same-origin`` or ``none``) and, on /v1, carry a JSON body type (which a cross-site
form cannot send without a CORS preflight this server never grants).

With tokens, a wrong token is counted by surface (``on_failure``) and by client address: an
address that keeps presenting wrong ones is answered 429 for a while (``FailureThrottle``).
A missing token is no failure (a sign-in page's first visit, a probe without credentials).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request

from service.fronts.errors import ApiError
from service.fronts.failure_throttle import FailureThrottle

log = structlog.get_logger("service.auth")

# Headers a proxy adds: a request carrying one came from further away than its loopback
# peer (a service-mesh sidecar, a local reverse proxy), so it is not a local client.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "via", "x-envoy-external-address")


class Scope(StrEnum):
    READ = "read"
    OPERATOR = "operator"


class AuthSurface(StrEnum):
    """Where a credential was presented: the label of ``ledger_auth_failures_total``."""

    API = "api"  # a bearer token on /v1
    CONSOLE = "console"  # a bearer token on a console page
    CONSOLE_SIGN_IN = "console_sign_in"  # a token typed into the console's sign-in form


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: their scope, a name for audit records that reveals no token, and the
    organizations they may see (a token limited to merchants: theirs; otherwise every one)."""

    scope: Scope
    name: str
    organizations: frozenset[str] | None = None

    @property
    def sees_every_merchant(self) -> bool:
        return self.organizations is None

    @property
    def is_operator(self) -> bool:
        return self.scope is Scope.OPERATOR


LOOPBACK_CALLER = Caller(Scope.OPERATOR, "loopback")
ANONYMOUS_CALLER = Caller(Scope.READ, "anonymous")
TOKEN_NAME_HEX_DIGITS = 12


def token_name(token: str) -> str:
    """A stable name for a token in audit records: a prefix of its SHA-256, never the token."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:TOKEN_NAME_HEX_DIGITS]


class ApiAuthorizer:
    def __init__(
        self,
        tokens: tuple[str, ...],
        operator_tokens: tuple[str, ...] = (),
        *,
        allow_anonymous: bool = False,
        throttle: FailureThrottle | None = None,
        on_failure: Callable[[AuthSurface], None] = lambda surface: None,
        organizations_by_token: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """``organizations_by_token``: the organizations a token limited to merchants sees
        (the union of its merchants'); a token not there sees every organization."""
        limits = organizations_by_token or {}

        def caller(token: str, scope: Scope) -> tuple[bytes, Caller]:
            return token.encode(), Caller(scope, token_name(token), limits.get(token))

        self._tokens = tuple(caller(token, Scope.READ) for token in tokens) + tuple(
            caller(token, Scope.OPERATOR) for token in operator_tokens
        )
        self._allow_anonymous = allow_anonymous
        self._throttle = throttle
        self._on_failure = on_failure

    @property
    def uses_tokens(self) -> bool:
        return bool(self._tokens)

    @property
    def loopback_only(self) -> bool:
        return not self._tokens and not self._allow_anonymous

    @property
    def anonymous(self) -> bool:
        """No tokens and the operator's explicit LEDGER_API_ALLOW_ANONYMOUS: anyone reads."""
        return not self._tokens and self._allow_anonymous

    def check(
        self, request: Request, scope: Scope = Scope.READ, surface: AuthSurface = AuthSurface.API
    ) -> Caller:
        """The caller, if allowed ``scope``; 401 without a valid token, 403 without the scope,
        429 after too many wrong tokens from the client's address."""
        return require_scope(self._caller(request, surface), scope)

    def check_token(self, request: Request, token: str, surface: AuthSurface) -> Caller:
        """The caller ``token`` names, presented otherwise than in ``Authorization`` (a form):
        counted and throttled as a bearer token is. Only where tokens are configured."""
        assert self.uses_tokens, "without tokens there is nothing to check a token against"
        return self._token_caller(request, token.strip(), surface)

    def caller_named(self, name: str, scope: Scope) -> Caller | None:
        """The caller of a configured token with this name and scope, if one still is."""
        for _, caller in self._tokens:
            if caller.name == name and caller.scope is scope:
                return caller
        return None

    def _caller(self, request: Request, surface: AuthSurface) -> Caller:
        if self.anonymous:
            # Opting out of tokens opens reading, never bodies or replays.
            return ANONYMOUS_CALLER
        if self.loopback_only:
            if not _is_local(request):
                raise ApiError(
                    401,
                    "unauthorized",
                    "without LEDGER_API_TOKENS only loopback clients not behind a proxy may read",
                )
            _require_loopback_host(request)
            if request.method not in SAFE_METHODS:
                _require_same_origin(request)
            return LOOPBACK_CALLER
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required",
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip
        return self._token_caller(request, presented.strip(), surface)

    def _token_caller(self, request: Request, presented: str, surface: AuthSurface) -> Caller:
        address = request.client.host if request.client else None
        if self._throttle is not None:
            wait_seconds = self._throttle.retry_after_seconds(address)
            if wait_seconds is not None:
                raise ApiError(
                    429, "too_many_failures",
                    "too many wrong tokens from this address; retry after Retry-After",
                    {"Retry-After": str(wait_seconds)},
                )  # fmt: skip
        candidate = presented.encode()
        # Compare against every token, always, so timing says nothing about which matched.
        matched = None
        for token, caller in self._tokens:
            if hmac.compare_digest(candidate, token) and matched is None:
                matched = caller
        if matched is None:
            self._on_failure(surface)
            if self._throttle is not None and self._throttle.record_failure(address):
                # Never the token nor the address (docs/operations.md, Logs): the metric says where.
                log.warning("auth.throttled", surface=surface.value)
            raise ApiError(401, "unauthorized", "the bearer token is not valid",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        return matched


def require_scope(caller: Caller, scope: Scope) -> Caller:
    """``caller`` if it has ``scope``; 403 otherwise."""
    if scope is Scope.OPERATOR and not caller.is_operator:
        raise ApiError(403, "insufficient_scope", "this needs an operator token",
                       {"WWW-Authenticate": 'Bearer error="insufficient_scope"'})  # fmt: skip
    return caller


def require_every_merchant(caller: Caller) -> Caller:
    """``caller`` if limited to no merchant; 403 otherwise: what is not an invoice of one
    merchant (deliveries, exports, corrections) is for tokens that see them all."""
    if not caller.sees_every_merchant:
        raise ApiError(403, "merchant_limited",
                       "this needs a token that is not limited to merchants",
                       {"WWW-Authenticate": 'Bearer error="insufficient_scope"'})  # fmt: skip
    return caller


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})


def _require_loopback_host(request: Request) -> None:
    """The Host must be a loopback name with the served port: any other name reaching a
    loopback socket is a rebound DNS name (or a misrouted request)."""
    default_port = 443 if request.url.scheme == "https" else 80
    host, port = _host_and_port(request.headers.get("host", ""), default_port)
    served = request.scope.get("server")
    served_port = served[1] if served and served[1] is not None else default_port
    if not _is_loopback_name(host) or port != served_port:
        raise ApiError(
            421,
            "misdirected_request",
            "without LEDGER_API_TOKENS the Host must be a loopback name with the served port",
        )


def _require_same_origin(request: Request) -> None:
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if not same_origin(request.headers, expected):
        raise ApiError(403, "cross_origin", "a state-changing request from another origin")
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.url.path.startswith("/v1/") and media_type != "application/json":
        raise ApiError(
            415,
            "json_required",
            "without LEDGER_API_TOKENS a /v1 write must send Content-Type: application/json",
        )


def same_origin(headers: Headers, expected_origin: str) -> bool:
    """Whether a request says it came from ``expected_origin``, or says nothing: ``Origin``
    absent or equal to it (``null`` is another origin), ``Sec-Fetch-Site`` absent,
    ``same-origin`` or ``none`` (typed or bookmarked)."""
    origin = headers.get("origin")
    fetch_site = headers.get("sec-fetch-site")
    if origin is not None and origin != expected_origin:
        return False
    return fetch_site is None or fetch_site in SAME_ORIGIN_FETCH_SITES


def _host_and_port(host_header: str, default_port: int) -> tuple[str, int | None]:
    """``Host`` as (name, port): ``localhost:8000``, ``127.0.0.1``, ``[::1]:8000``. A port
    that is not a number is None (it matches no served port)."""
    text = host_header.strip().lower()
    if text.startswith("["):
        name, _, rest = text.partition("]")
        name, port = name + "]", rest.removeprefix(":") if rest else None
    elif text.count(":") == 1:
        name, _, port = text.partition(":")
    else:
        name, port = text, None
    if port is None:
        return name, default_port
    return name, int(port) if port.isascii() and port.isdigit() else None


def _is_loopback_name(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    return _is_loopback(host.removeprefix("[").removesuffix("]"))


def _is_local(request: Request) -> bool:
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    return _is_loopback(request.client.host if request.client else None)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
