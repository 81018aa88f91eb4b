"""Cybersource's HTTP Signature authentication (shared secret), as its Python SDK computes it.

Signed headers: ``host date request-target v-c-merchant-id`` for GET and DELETE, with
``digest`` after ``request-target`` for POST, PUT and PATCH. The signing string is one
``name: value`` line per header, lower-case names, joined by newlines with no trailing one;
``request-target`` is the lower-case method, a space and the path with its query string. The
signature is base64(HMAC-SHA256(base64-decoded secret, signing string)).

A portfolio's key (Cybersource's "meta key") acts for the portfolio's organizations: the
``v-c-merchant-id`` header names the organization the call is for, while the signing string's
``v-c-merchant-id`` line names the portfolio that owns the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class MerchantCredentials:
    merchant_id: str
    key_id: str
    secret_key: bytes  # base64-decoded
    # The organizations this key may act for besides its owner (a portfolio's children).
    organization_ids: tuple[str, ...] = ()

    def may_act_for(self, organization_id: str) -> bool:
        return organization_id == self.merchant_id or organization_id in self.organization_ids

    def __repr__(self) -> str:
        return f"MerchantCredentials(merchant_id={self.merchant_id!r}, key_id={self.key_id!r})"

    def authenticate(
        self,
        *,
        method: str,
        host: str,
        path_and_query: str,
        body: bytes,
        organization_id: str,
        now: float,
    ) -> dict[str, str]:
        return sign_request(
            self,
            method=method,
            host=host,
            path_and_query=path_and_query,
            date=http_date(now),
            body=body,
            organization_id=organization_id,
        )


class SignatureMismatch(Exception):
    """A request whose HTTP Signature does not verify; ``reason`` says why."""


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def body_digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def signed_header_names(method: str) -> tuple[str, ...]:
    if method.upper() in METHODS_WITH_BODY:
        return ("host", "date", "request-target", "digest", "v-c-merchant-id")
    return ("host", "date", "request-target", "v-c-merchant-id")


def signing_string(values: Mapping[str, str], names: tuple[str, ...]) -> str:
    return "\n".join(f"{name}: {values[name]}" for name in names)


def sign_request(
    credentials: MerchantCredentials,
    *,
    method: str,
    host: str,
    path_and_query: str,
    date: str,
    body: bytes = b"",
    organization_id: str | None = None,
) -> dict[str, str]:
    """The headers that authenticate one request made for ``organization_id`` (by default the
    key's owner)."""
    acting_for = organization_id or credentials.merchant_id
    if not credentials.may_act_for(acting_for):
        raise ValueError(f"this key does not act for organization {acting_for!r}")
    names = signed_header_names(method)
    values = {
        "host": host,
        "date": date,
        "request-target": f"{method.lower()} {path_and_query}",
        "v-c-merchant-id": credentials.merchant_id,
    }
    headers = {"host": host, "date": date, "v-c-merchant-id": acting_for}
    if "digest" in names:
        values["digest"] = headers["digest"] = body_digest(body)
    signature = _hmac(credentials.secret_key, signing_string(values, names))
    headers["signature"] = (
        f'keyid="{credentials.key_id}", algorithm="HmacSHA256", '
        f'headers="{" ".join(names)}", signature="{signature}"'
    )
    return headers


def _hmac(secret: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(secret, text.encode(), hashlib.sha256).digest()).decode()


def parse_signature_header(value: str) -> dict[str, str]:
    parameters = {}
    for part in value.split(","):
        name, separator, quoted = part.strip().partition("=")
        if not separator:
            raise SignatureMismatch("malformed Signature header")
        parameters[name.strip()] = quoted.strip().strip('"')
    return parameters


def verify_request(
    credentials_by_key_id: Mapping[str, MerchantCredentials],
    *,
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> MerchantCredentials:
    """Check a request as Cybersource would (the sandbox does); returns whose key signed it.

    The organization the request acts for is its ``v-c-merchant-id`` header."""
    header = headers.get("signature")
    if not header:
        raise SignatureMismatch("no Signature header")
    parameters = parse_signature_header(header)
    credentials = credentials_by_key_id.get(parameters.get("keyid", ""))
    if credentials is None:
        raise SignatureMismatch("unknown keyid")
    names = tuple(parameters.get("headers", "").split())
    if names != signed_header_names(method):
        raise SignatureMismatch(f"signed headers must be {' '.join(signed_header_names(method))}")
    if not credentials.may_act_for(headers.get("v-c-merchant-id", "")):
        raise SignatureMismatch("v-c-merchant-id does not belong to the key")
    if "digest" in names and not hmac.compare_digest(headers.get("digest", ""), body_digest(body)):
        raise SignatureMismatch("Digest does not match the body")
    values = {
        "host": headers.get("host", ""),
        "date": headers.get("date", ""),
        "request-target": f"{method.lower()} {path_and_query}",
        "digest": headers.get("digest", ""),
        "v-c-merchant-id": credentials.merchant_id,
    }
    expected = _hmac(credentials.secret_key, signing_string(values, names))
    if not hmac.compare_digest(expected, parameters.get("signature", "")):
        raise SignatureMismatch("signature does not match")
    return credentials
