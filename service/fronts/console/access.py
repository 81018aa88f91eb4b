"""Who may use the console, and proof that a form was sent by the console's own page.

The console accepts the same tokens as /v1, through the same authorizer. A browser cannot add
an ``Authorization`` header to a plain link or form, so the sign-in form takes a token once
and opens a session (``service.store.console_sessions``): the cookie holds the session's
random id, never the token (``HttpOnly``: no script reads it; ``SameSite=Strict``: no other
site's page sends it; ``Path=/console``). A stolen cookie is worth less than a stolen token:
it ends at expiry or sign-out, on every replica, and /v1 never reads it. A request with an
``Authorization`` header (a script) is checked as on /v1 and needs no session.

Forms that change state, sign-in included, must come from the console's origin, and those
behind a sign-in also carry a token derived from the credential: an HMAC of a fixed label
keyed by the session id (by the bearer token for a script, by a per-process secret on
loopback without tokens). Another site cannot read the console's pages, so it cannot forge
the field: this protects the loopback mode too, where there is no cookie for ``SameSite`` to
withhold.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request

from service.fronts.auth import same_origin

SESSION_COOKIE = "ledger_console_session"
# Before sessions the console's cookie held the token itself: deleted wherever it is seen.
LEGACY_TOKEN_COOKIE = "ledger_console_token"
FORM_TOKEN_FIELD = "formToken"
_FORM_TOKEN_LABEL = b"invoice-ledger console form v2"


def bearer_token(request: Request) -> str | None:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return presented.strip()
    return None


def session_id(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE, "").strip() or None


def from_console_origin(request: Request) -> bool:
    """Whether a form was posted from this server's pages (or says nothing of where from).

    The origin is compared by its host and port (``Host``), for either scheme: behind a proxy
    that ends TLS the server sees http where the browser says https.
    """
    host = request.headers.get("host", "")
    return any(same_origin(request.headers, f"{scheme}://{host}") for scheme in ("https", "http"))


class FormTokens:
    def __init__(self) -> None:
        # Keys form tokens when there is no credential (loopback without LEDGER_API_TOKENS).
        self._process_secret = secrets.token_bytes(32)

    def issue(self, request: Request) -> str:
        credential = bearer_token(request) or session_id(request)
        key = credential.encode() if credential is not None else self._process_secret
        return hmac.new(key, _FORM_TOKEN_LABEL, hashlib.sha256).hexdigest()

    def accepts(self, request: Request, presented: str | None) -> bool:
        """Whether a state-changing form came from the console's own page."""
        if not from_console_origin(request):
            return False
        expected = self.issue(request)
        return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
