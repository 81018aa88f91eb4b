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
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from service.cybersource import javascript_json

SIGNATURE_HEADER = "v-c-signature"
PAYLOAD_FIELDS = ("payload", "payloads")
SIGNATURE_BYTES = hashlib.sha256().digest_size


class SignedContent(StrEnum):
    AUTO = "auto"
    RAW = "raw"
    PAYLOAD = "payload"
    # An encrypted notification signed in clear (see message_encryption.py): the plaintext as
    # it was encrypted, or the payload of the notification it decrypts to. Never a mode.
    DECRYPTED_RAW = "decrypted_raw"
    DECRYPTED_PAYLOAD = "decrypted_payload"


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
    # SHA-256 (hex) of the JSON.stringify'd payload when only the payload was signed: the
    # envelope around it is then unsigned, and this digest names the signed content.
    payload_digest: str | None = None


_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,16}")  # ASCII only: str.isdigit accepts "²"


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
    if not _TIMESTAMP_PATTERN.fullmatch(parts["t"]):
        raise SignatureRejected(
            "malformed_signature", "v-c-signature t must be milliseconds since the epoch"
        )
    try:
        signature = base64.b64decode(parts["sig"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise SignatureRejected("malformed_signature", "v-c-signature sig is not base64") from error
    return SignatureHeader(timestamp_ms=int(parts["t"]), key_id=parts["keyId"], signature=signature)


def signed_message(timestamp_ms: int, raw_body: bytes, form: SignedContent) -> bytes | None:
    """What a sender signing ``form`` signed; None when the body has no payload to sign."""
    prefix = str(timestamp_ms).encode() + b"."
    if form is SignedContent.RAW:
        return prefix + raw_body
    if form is SignedContent.PAYLOAD:
        content = payload_content(raw_body)
        return None if content is None else prefix + content
    raise ValueError("a sender signs one form: raw or payload")


def payload_content(raw_body: bytes) -> bytes | None:
    """``JSON.stringify(JSON.parse(body).payload)`` (else of ``payloads``) as UTF-8, or None
    without a payload."""
    try:
        content = javascript_json.reserialized_field(raw_body, PAYLOAD_FIELDS)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # not JSON, or nested too deep to re-serialise: only the raw form can match
    return content


def _may_carry_a_payload(raw_body: bytes) -> bool:
    """A byte-level test, far cheaper than parsing: only a JSON object naming a payload field
    can be signed in the payload form."""
    return raw_body.lstrip()[:1] == b"{" and b'"payload' in raw_body


def compute_signature(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class AdmittedSignature:
    """A signature header naming a configured key with a timely ``t``: worth reading a body for."""

    header: SignatureHeader
    key: bytes


class WebhookVerifier:
    """Checks signatures against several keys at once, so keys can be rotated without downtime.

    Refusal is made cheap, because anyone can send a body that will not verify: the header is
    judged before the body is read, the raw form costs one HMAC over the bytes, and the payload
    form (a parse and a re-serialisation, tens of times dearer) is computed only for a body that
    could carry a payload and is no larger than ``payload_form_max_bytes``.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        tolerance_seconds: int,
        signed_content: SignedContent,
        future_skew_seconds: int = 300,
        payload_form_max_bytes: int = 262_144,
    ) -> None:
        self._keys = dict(keys)
        self._tolerance_ms = tolerance_seconds * 1000
        self._future_skew_ms = future_skew_seconds * 1000
        self._signed_content = signed_content
        self._payload_form_max_bytes = payload_form_max_bytes

    @property
    def signed_content(self) -> SignedContent:
        return self._signed_content

    def admit(self, header_value: str | None, now_ms: int) -> AdmittedSignature:
        """Judge the header alone: syntax, key and timestamp."""
        header = parse_signature_header(header_value)
        key = self._keys.get(header.key_id)
        if key is None:
            raise SignatureRejected("unknown_key_id", "the signature's keyId is not configured")
        if now_ms - header.timestamp_ms > self._tolerance_ms:
            raise SignatureRejected(
                "stale_timestamp", "the signature timestamp is older than the allowed age"
            )
        # A genuine signature is made before it is received; only clock skew can put it
        # ahead, and a far-future t would let a captured delivery be replayed for longer.
        if header.timestamp_ms - now_ms > self._future_skew_ms:
            raise SignatureRejected(
                "future_timestamp", "the signature timestamp is ahead of the allowed clock skew"
            )
        return AdmittedSignature(header, key)

    def verify_body(self, admitted: AdmittedSignature, raw_body: bytes) -> VerifiedSignature:
        verified = self._verify_raw(admitted, raw_body)
        if verified is None and self._wants_payload_form(admitted, raw_body):
            verified = self._verify_payload(admitted, payload_content(raw_body))
        return _or_refused(verified)

    async def verify_body_with(
        self,
        admitted: AdmittedSignature,
        raw_body: bytes,
        payload_form: Callable[[bytes], Awaitable[bytes | None]],
    ) -> VerifiedSignature:
        """``verify_body``, with the payload form computed by ``payload_form`` (off the event
        loop: see ``service/ingest/payload_forms.py``), and only when the raw form failed."""
        verified = self._verify_raw(admitted, raw_body)
        if verified is None and self._wants_payload_form(admitted, raw_body):
            verified = self._verify_payload(admitted, await payload_form(raw_body))
        return _or_refused(verified)

    async def verify_decrypted_with(
        self,
        admitted: AdmittedSignature,
        plaintext: bytes,
        notification: bytes,
        payload_form: Callable[[bytes], Awaitable[bytes | None]],
    ) -> VerifiedSignature:
        """A signature over an encrypted delivery's clear content: ``plaintext`` as it was
        encrypted (``decrypted_raw``), or the payload form of the ``notification`` it
        decrypts to (``decrypted_payload``)."""
        verified = self._verify_raw(admitted, plaintext, SignedContent.DECRYPTED_RAW)
        if verified is None and self._wants_payload_form(admitted, notification):
            content = await payload_form(notification)
            verified = self._verify_payload(admitted, content, SignedContent.DECRYPTED_PAYLOAD)
        return _or_refused(verified)

    def verify(self, header_value: str | None, raw_body: bytes, now_ms: int) -> VerifiedSignature:
        return self.verify_body(self.admit(header_value, now_ms), raw_body)

    def _verify_raw(
        self,
        admitted: AdmittedSignature,
        raw_body: bytes,
        form: SignedContent = SignedContent.RAW,
    ) -> VerifiedSignature | None:
        header = admitted.header
        if len(header.signature) != SIGNATURE_BYTES:
            return None
        if self._signed_content not in (SignedContent.AUTO, SignedContent.RAW):
            return None
        message = signed_message(header.timestamp_ms, raw_body, SignedContent.RAW)
        if message is None or not self._matches(admitted, message):
            return None
        return VerifiedSignature(header.key_id, form, header.timestamp_ms)

    def _wants_payload_form(self, admitted: AdmittedSignature, raw_body: bytes) -> bool:
        return (
            len(admitted.header.signature) == SIGNATURE_BYTES
            and self._signed_content in (SignedContent.AUTO, SignedContent.PAYLOAD)
            and len(raw_body) <= self._payload_form_max_bytes
            and _may_carry_a_payload(raw_body)
        )

    def _verify_payload(
        self,
        admitted: AdmittedSignature,
        content: bytes | None,
        form: SignedContent = SignedContent.PAYLOAD,
    ) -> VerifiedSignature | None:
        header = admitted.header
        if content is None:
            return None
        message = str(header.timestamp_ms).encode() + b"." + content
        if not self._matches(admitted, message):
            return None
        return VerifiedSignature(
            header.key_id,
            form,
            header.timestamp_ms,
            payload_digest=hashlib.sha256(content).hexdigest(),
        )

    @staticmethod
    def _matches(admitted: AdmittedSignature, message: bytes) -> bool:
        # compare_digest takes time independent of where the values differ.
        return hmac.compare_digest(
            compute_signature(admitted.key, message), admitted.header.signature
        )


def _or_refused(verified: VerifiedSignature | None) -> VerifiedSignature:
    if verified is None:
        raise SignatureRejected("bad_signature", "the signature does not match the body")
    return verified


def sign(
    key_id: str,
    key: bytes,
    body: bytes,
    timestamp_ms: int,
    signed_content: SignedContent = SignedContent.RAW,
) -> str:
    """The v-c-signature header value a sender would attach to ``body``."""
    message = signed_message(timestamp_ms, body, signed_content)
    if message is None:
        raise ValueError("the body has no payload field to sign")
    signature = base64.b64encode(compute_signature(key, message)).decode()
    return f"t={timestamp_ms};keyId={key_id};sig={signature}"
