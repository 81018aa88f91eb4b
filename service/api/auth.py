"""Bearer tokens for /v1, compared in constant time; loopback-only when none are configured."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request

from service.api.errors import ApiError


class ApiAuthorizer:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    @property
    def loopback_only(self) -> bool:
        return not self._tokens

    def check(self, request: Request) -> None:
        if self.loopback_only:
            if not _is_loopback(request.client.host if request.client else None):
                raise ApiError(
                    401, "unauthorized", "without LEDGER_API_TOKENS only loopback clients may read"
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


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
