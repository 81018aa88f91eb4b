"""Bearer tokens for /v1, compared in constant time; loopback-only when none are configured.

Two scopes: a read token reads invoices, reports and the delivery log without bodies; an
operator token may also read delivery bodies, replay deliveries and record corrections.
Without any token configured, loopback clients have both scopes (local use, ``make run``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request

from service.api.errors import ApiError

# Headers a proxy adds: a request carrying one came from further away than its loopback
# peer (a service-mesh sidecar, a local reverse proxy), so it is not a local client.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "via", "x-envoy-external-address")


class Scope(StrEnum):
    READ = "read"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: their scope, and a name for audit records that reveals no token."""

    scope: Scope
    name: str

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
    ) -> None:
        self._tokens = tuple(
            (token.encode(), Caller(Scope.READ, token_name(token))) for token in tokens
        ) + tuple(
            (token.encode(), Caller(Scope.OPERATOR, token_name(token))) for token in operator_tokens
        )
        self._allow_anonymous = allow_anonymous

    @property
    def loopback_only(self) -> bool:
        return not self._tokens and not self._allow_anonymous

    @property
    def anonymous(self) -> bool:
        """No tokens and the operator's explicit LEDGER_API_ALLOW_ANONYMOUS: anyone reads."""
        return not self._tokens and self._allow_anonymous

    def check(self, request: Request, scope: Scope = Scope.READ) -> Caller:
        """The caller, if allowed ``scope``; 401 without a valid token, 403 without the scope."""
        caller = self._caller(request)
        if scope is Scope.OPERATOR and not caller.is_operator:
            raise ApiError(403, "insufficient_scope", "this needs an operator token",
                           {"WWW-Authenticate": 'Bearer error="insufficient_scope"'})  # fmt: skip
        return caller

    def _caller(self, request: Request) -> Caller:
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
            return LOOPBACK_CALLER
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "unauthorized", "a bearer token is required",
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip
        candidate = presented.strip().encode()
        # Compare against every token, always, so timing says nothing about which matched.
        matched = None
        for token, caller in self._tokens:
            if hmac.compare_digest(candidate, token) and matched is None:
                matched = caller
        if matched is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        return matched


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
