"""Bearer tokens for /v1, compared in constant time; loopback-only when none are configured."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request

from service.api.errors import ApiError

# Headers a proxy adds: a request carrying one came from further away than its loopback
# peer (a service-mesh sidecar, a local reverse proxy), so it is not a local client.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "via", "x-envoy-external-address")


class ApiAuthorizer:
    def __init__(self, tokens: tuple[str, ...], *, allow_anonymous: bool = False) -> None:
        self._tokens = tuple(token.encode() for token in tokens)
        self._allow_anonymous = allow_anonymous

    @property
    def loopback_only(self) -> bool:
        return not self._tokens and not self._allow_anonymous

    @property
    def anonymous(self) -> bool:
        """No tokens and the operator's explicit LEDGER_API_ALLOW_ANONYMOUS: anyone reads."""
        return not self._tokens and self._allow_anonymous

    def check(self, request: Request) -> None:
        if self.anonymous:
            return
        if self.loopback_only:
            if not _is_local(request):
                raise ApiError(
                    401,
                    "unauthorized",
                    "without LEDGER_API_TOKENS only loopback clients not behind a proxy may read",
                )
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "unauthorized", "a bearer token is required",
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip
        candidate = presented.strip().encode()
        # Compare against every token, always, so timing says nothing about which matched.
        matches = [hmac.compare_digest(candidate, token) for token in self._tokens]
        if not any(matches):
            raise ApiError(401, "unauthorized", "the bearer token is not valid",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip


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
