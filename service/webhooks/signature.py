"""Cybersource webhook signatures: ``v-c-signature: t=<ms>;keyId=<id>;sig=<base64>``.

The signature is HMAC-SHA256, keyed with the base64-decoded secret chosen by ``keyId``, over
``t + "." + <signed content>``. Cybersource's documentation is ambiguous about the content, and
its own code disagrees, so two forms exist:

* ``raw``: the request body exactly as received;
* ``payload``: ``JSON.stringify`` of the body's ``payload`` (or ``payloads``) field.

``auto`` accepts either; the form that matched is reported so operators can pin it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.webhooks import javascript_json

SIGNATURE_HEADER = "v-c-signature"


class SignedContent(StrEnum):
    AUTO = "auto"
    RAW = "raw"
    PAYLOAD = "payload"


class SignatureRejected(Exception):
    """A delivery whose signature cannot be trusted; ``reason`` is a stable, loggable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp_ms: int
    key_id: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    key_id: str
    signed_content: SignedContent
    timestamp_ms: int


def parse_signature_header(value: str | None) -> SignatureHeader:
    if value is None or not value.strip():
        raise SignatureRejected("missing_signature", "the v-c-signature header is missing")
    parts: dict[str, str] = {}
    for part in value.split(";"):
        name, separator, part_value = part.strip().partition("=")
        if not separator:
            raise SignatureRejected(
                "malformed_signature", "v-c-signature must be t=…;keyId=…;sig=…"
            )
        # The signature is base64 and may itself end in "=": only the first "=" separates.
        parts[name.strip()] = part_value.strip()
    missing = [name for name in ("t", "keyId", "sig") if not parts.get(name)]
    if missing:
        raise SignatureRejected("malformed_signature", f"v-c-signature lacks {', '.join(missing)}")
    if not parts["t"].isdigit() or len(parts["t"]) > 16:
        raise SignatureRejected(
            "malformed_signature", "v-c-signature t must be milliseconds since the epoch"
        )
    try:
        signature = base64.b64decode(parts["sig"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise SignatureRejected("malformed_signature", "v-c-signature sig is not base64") from error
    return SignatureHeader(timestamp_ms=int(parts["t"]), key_id=parts["keyId"], signature=signature)


def signed_messages(
    timestamp_ms: int, raw_body: bytes, signed_content: SignedContent
) -> Iterator[tuple[SignedContent, bytes]]:
    """The candidate messages a sender may have signed, by form, cheapest first.

    The payload form needs the body parsed and re-serialised, so it is built only when the
    raw form did not match.
    """
    prefix = str(timestamp_ms).encode() + b"."
    if signed_content in (SignedContent.AUTO, SignedContent.RAW):
        yield SignedContent.RAW, prefix + raw_body
    if signed_content in (SignedContent.AUTO, SignedContent.PAYLOAD):
        payload = _payload_field(_parse_as_javascript(raw_body))
        if payload is not None:
            yield SignedContent.PAYLOAD, prefix + javascript_json.stringify(payload).encode()


def _payload_field(parsed_body: Any) -> Any:
    if not isinstance(parsed_body, dict):
        return None
    if "payload" in parsed_body:
        return parsed_body["payload"]
    return parsed_body.get("payloads")


def compute_signature(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class WebhookVerifier:
    """Checks signatures against several keys at once, so keys can be rotated without downtime."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        tolerance_seconds: int,
        signed_content: SignedContent,
    ) -> None:
        self._keys = dict(keys)
        self._tolerance_ms = tolerance_seconds * 1000
        self._signed_content = signed_content

    def verify(self, header_value: str | None, raw_body: bytes, now_ms: int) -> VerifiedSignature:
        header = parse_signature_header(header_value)
        key = self._keys.get(header.key_id)
        if key is None:
            raise SignatureRejected("unknown_key_id", "the signature's keyId is not configured")
        if abs(now_ms - header.timestamp_ms) > self._tolerance_ms:
            raise SignatureRejected(
                "stale_timestamp",
                "the signature timestamp is outside the allowed window",
            )
        for form, message in signed_messages(header.timestamp_ms, raw_body, self._signed_content):
            # compare_digest takes time independent of where the values differ.
            if hmac.compare_digest(compute_signature(key, message), header.signature):
                return VerifiedSignature(header.key_id, form, header.timestamp_ms)
        raise SignatureRejected("bad_signature", "the signature does not match the body")


def _parse_as_javascript(raw_body: bytes) -> Any:
    try:
        return javascript_json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # only the raw form can match a body that is not JSON


def sign(
    key_id: str,
    key: bytes,
    body: bytes,
    timestamp_ms: int,
    signed_content: SignedContent = SignedContent.RAW,
) -> str:
    """The v-c-signature header value a sender would attach to ``body``."""
    if signed_content is SignedContent.AUTO:
        raise ValueError("a sender signs one form: raw or payload")
    messages = dict(signed_messages(timestamp_ms, body, signed_content))
    if signed_content not in messages:
        raise ValueError("the body has no payload field to sign")
    message = messages[signed_content]
    signature = base64.b64encode(compute_signature(key, message)).decode()
    return f"t={timestamp_ms};keyId={key_id};sig={signature}"
