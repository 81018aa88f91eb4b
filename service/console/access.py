"""Who may use the console, and proof that a form was sent by the console's own page.

The console accepts the same tokens as /v1 through the same authorizer. A browser cannot add
an ``Authorization`` header to a plain link or form, so a login form keeps the token in a
cookie (``HttpOnly``: no script reads it; ``SameSite=Strict``: no other site's page sends it;
``Path=/console``) and every console request presents it to the authorizer as a bearer token.

Forms that change state carry a token derived from the credential (an HMAC of a fixed label
keyed by the bearer token, or by a per-process secret on loopback without tokens). Another
site cannot read the console's pages, so it cannot forge the field: this protects the
loopback mode too, where there is no cookie for ``SameSite`` to withhold.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.datastructures import Headers
from starlette.requests import Request

TOKEN_COOKIE = "ledger_console_token"
TOKEN_COOKIE_MAX_AGE_SECONDS = 8 * 60 * 60  # a working day; then log in again
FORM_TOKEN_FIELD = "formToken"
_FORM_TOKEN_LABEL = b"invoice-ledger console form v1"


def presented_token(request: Request) -> str | None:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return presented.strip()
    cookie = request.cookies.get(TOKEN_COOKIE, "").strip()
    return cookie or None


def with_bearer(request: Request, token: str | None) -> Request:
    """``request`` as the authorizer should see it: the cookie's token as a bearer token."""
    if token is None or "authorization" in request.headers:
        return request
    scope = dict(request.scope)
    headers = [(name, value) for name, value in scope["headers"] if name != b"authorization"]
    scope["headers"] = [*headers, (b"authorization", f"Bearer {token}".encode("latin-1"))]
    return Request(scope, request.receive)


class FormTokens:
    def __init__(self) -> None:
        # Keys form tokens when no bearer token exists (loopback without LEDGER_API_TOKENS).
        self._process_secret = secrets.token_bytes(32)

    def issue(self, request: Request) -> str:
        token = presented_token(request)
        key = token.encode() if token is not None else self._process_secret
        return hmac.new(key, _FORM_TOKEN_LABEL, hashlib.sha256).hexdigest()

    def accepts(self, request: Request, presented: str | None) -> bool:
        """Whether a state-changing form came from the console's own page."""
        if not _same_origin(request.headers):
            return False
        expected = self.issue(request)
        return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def _same_origin(headers: Headers) -> bool:
    # Browsers send Origin on every POST; one naming another site is refused outright.
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = headers.get("host", "")
    return origin.split("://", 1)[-1] == host
