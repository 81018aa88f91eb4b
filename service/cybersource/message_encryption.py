"""Message-level encryption of notifications: the shapes an encrypted notification arrives in,
and its decryption (JWE compact serialisation, RSA-OAEP-256 key wrapping, A256GCM content).

Shapes recognised (none is in Cybersource's own documentation; a third-party integration
reads all three, and Cybersource's SDK wraps its encrypted REST requests as the second):

* the whole body a bare compact JWE (five dot-separated base64url parts);
* a JSON object whose ``encData`` or ``encryptedRequest`` holds the JWE, possibly with other
  fields beside it;
* a notification envelope whose ``payload`` (or ``payloads``) is the JWE, or such an object.

A JWE is decrypted with the key its header's ``kid`` names (any of ``CertifiedKey.identifiers``)
first, then with each other configured key in turn (what Cybersource writes in the ``kid`` of
a notification is not documented; AES-GCM's tag tells the right key). A ``kid`` that names no
configured key, on a JWE none opens, is ``unknown kid``. Only RSA-OAEP-256 with A256GCM is
accepted. A failure says why in a stable, loggable reason, never with the content.

Decryption gives confidentiality, not authenticity: anyone holding the certificate can encrypt.
What a decrypted notification may decide is for the signature to say (``service/ingest``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as field_
from enum import StrEnum
from typing import Any

from cryptography import x509
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter

from service.cybersource.keys import CertifiedKey

KEY_ALGORITHM = "RSA-OAEP-256"
CONTENT_ALGORITHM = "A256GCM"
ENCRYPTED_FIELDS = ("encData", "encryptedRequest")
PAYLOAD_FIELDS = ("payload", "payloads")
# joserfc's default bound on a ciphertext is 64 KiB; a notification may be as large as a body.
CIPHERTEXT_BYTES_MAX_DEFAULT = 1_048_576
# A header is a few dozen bytes; anything far larger is not a notification's.
HEADER_BYTES_MAX = 4096
_BASE64URL_DOTTED = re.compile(rb"eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*){1,8}")


class Shape(StrEnum):
    """How an encrypted notification is wrapped."""

    BARE = "bare"
    ENC_DATA = "encData"
    ENCRYPTED_REQUEST = "encryptedRequest"
    # The envelope in clear, its payload field the JWE (or an encData object): inferred.
    PAYLOAD = "payload"


class Failure(StrEnum):
    """Why an encrypted notification could not be decrypted (a metric label, an inbox reason)."""

    MALFORMED = "malformed"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    NO_KEY = "no_key"
    UNKNOWN_KID = "unknown_kid"
    WRONG_KEY = "wrong_key"
    TAG_MISMATCH = "tag_mismatch"

    @property
    def description(self) -> str:
        return _FAILURE_DESCRIPTIONS[self]


_FAILURE_DESCRIPTIONS = {
    Failure.MALFORMED: "not a compact JWE (truncated, or not base64url)",
    Failure.UNSUPPORTED_ALGORITHM: f"not {KEY_ALGORITHM} with {CONTENT_ALGORITHM}",
    Failure.NO_KEY: "no decryption key is configured",
    Failure.UNKNOWN_KID: "unknown kid",
    Failure.WRONG_KEY: "the key does not open it (wrong key, or a tampered encrypted key)",
    Failure.TAG_MISMATCH: "tag mismatch (tampered content, IV, header or tag)",
}


class Undecryptable(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.description)
        self.failure = failure

    @property
    def reason(self) -> str:
        """What the inbox records: ``undecryptable: unknown kid``."""
        return f"undecryptable: {self.failure.description}"


@dataclass(frozen=True, slots=True)
class EncryptedNotification:
    """Where a body carries its JWE. ``beside``: the body has other fields in clear (the
    envelope around an encrypted payload, or fields beside ``encData``)."""

    shape: Shape
    token: bytes
    field: str | None = None  # the top-level field holding it, for ENC_DATA and PAYLOAD
    beside: bool = False
    body: bytes = field_(default=b"", repr=False, compare=False)  # the body it came in


@dataclass(frozen=True, slots=True)
class Decrypted:
    """``plaintext``: what was encrypted, byte for byte. ``content``: the notification to
    read, the plaintext put back where the JWE was (the same bytes for a bare body)."""

    encrypted: EncryptedNotification
    plaintext: bytes
    content: bytes
    kid: str


def encrypted_notification(body: bytes) -> EncryptedNotification | None:
    """The JWE a body carries, if it is in one of the shapes; None for a clear body.

    A body is taken as encrypted by its form alone: a malformed JWE in one of the shapes is
    still an encrypted notification (one that will not decrypt), not a clear one.
    """
    stripped = body.strip()
    if _BASE64URL_DOTTED.fullmatch(stripped):
        return EncryptedNotification(Shape.BARE, stripped, body=stripped)
    if not stripped.startswith(b"{") or not _may_name_an_encrypted_field(stripped):
        return None
    try:
        document = json.loads(stripped, object_pairs_hook=dict, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    for name in ENCRYPTED_FIELDS:
        if name in document:
            return EncryptedNotification(
                Shape(name), _token(document[name]), name, len(document) > 1, stripped
            )
    for name in PAYLOAD_FIELDS:
        payload = document.get(name)
        token = _payload_token(payload)
        if token is not None:
            return EncryptedNotification(Shape.PAYLOAD, token, name, True, stripped)
    return None


def _may_name_an_encrypted_field(body: bytes) -> bool:
    # A byte-level test before any parse: a clear notification names none of these values.
    return b'"encData"' in body or b'"encryptedRequest"' in body or b'"eyJ' in body


def _payload_token(payload: Any) -> bytes | None:
    if isinstance(payload, str) and _BASE64URL_DOTTED.fullmatch(payload.strip().encode()):
        return payload.strip().encode()
    if isinstance(payload, dict):
        for name in ENCRYPTED_FIELDS:
            if name in payload:
                return _token(payload[name])
    return None


def _token(value: Any) -> bytes:
    # Not text: kept as an empty token, which decrypts as malformed.
    return value.strip().encode() if isinstance(value, str) else b""


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class NotificationKeyring:
    """The private keys notifications are encrypted for, several at once (rotation)."""

    def __init__(
        self,
        keys: Sequence[CertifiedKey],
        *,
        ciphertext_bytes_max: int = CIPHERTEXT_BYTES_MAX_DEFAULT,
    ) -> None:
        self._keys = tuple(keys)
        self._jwks = tuple(RSAKey.import_key(key.private_key) for key in self._keys)
        self._registry = _registry(ciphertext_bytes_max)

    def __repr__(self) -> str:
        return f"NotificationKeyring(kids={self.kids})"

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> tuple[CertifiedKey, ...]:
        return self._keys

    @property
    def kids(self) -> list[str]:
        return [key.kid for key in self._keys]

    def clear_body(self, body: bytes) -> bytes | None:
        """What a stored body says in clear: the body itself when it is not encrypted, its
        decryption when a configured key opens it, None when it is encrypted and none does."""
        encrypted = encrypted_notification(body)
        if encrypted is None:
            return body
        try:
            return self.decrypt(encrypted).content
        except (Undecryptable, RecursionError):
            return None

    def decrypt(self, encrypted: EncryptedNotification) -> Decrypted:
        """The plaintext and the notification to read; ``Undecryptable`` with the reason."""
        header = _protected_header(encrypted.token)
        if header.get("alg") != KEY_ALGORITHM or header.get("enc") != CONTENT_ALGORITHM:
            raise Undecryptable(Failure.UNSUPPORTED_ALGORITHM)
        if not self._keys:
            raise Undecryptable(Failure.NO_KEY)
        kid = header.get("kid")
        named = [
            (key, jwk)
            for key, jwk in zip(self._keys, self._jwks, strict=True)
            if isinstance(kid, str) and kid in key.identifiers
        ]
        # A kid that names no configured key is still tried with each of them: what Cybersource
        # puts in an egress JWE's kid is not documented, and the tag proves the right key.
        unnamed = [
            (key, jwk) for key, jwk in zip(self._keys, self._jwks, strict=True)
            if (key, jwk) not in named
        ]  # fmt: skip
        failure = Failure.WRONG_KEY if named or kid is None else Failure.UNKNOWN_KID
        for key, jwk in (*named, *unnamed):
            try:
                plaintext = jwe.decrypt_compact(
                    encrypted.token, jwk, registry=self._registry
                ).plaintext
            except JoseError as error:
                # joserfc says "Decryption failed" when RSA-OAEP cannot unwrap the content key,
                # and nothing when AES-GCM's tag does not match.
                if error.description and "Decryption failed" not in error.description:
                    raise Undecryptable(Failure.MALFORMED) from None
                if not error.description and (named or kid is None):
                    failure = Failure.TAG_MISMATCH
                continue
            except ValueError:  # wrong number of parts, bad base64 (binascii.Error)
                raise Undecryptable(Failure.MALFORMED) from None
            assert plaintext is not None
            return Decrypted(encrypted, plaintext, _content(encrypted, plaintext), key.kid)
        raise Undecryptable(failure)


def _registry(ciphertext_bytes_max: int) -> jwe.JWERegistry:
    registry = jwe.JWERegistry(
        # The SDK's encrypter adds iat; other parameters a sender adds are ignored (crit is
        # still enforced).
        header_registry={"iat": HeaderParameter("Issued at", "int")},
        algorithms=[KEY_ALGORITHM, CONTENT_ALGORITHM],
        strict_check_header=False,
    )
    # base64url: four characters for every three bytes.
    registry.max_ciphertext_length = ciphertext_bytes_max * 4 // 3 + 4
    return registry


def _protected_header(token: bytes) -> dict[str, Any]:
    parts = token.split(b".")
    if len(parts) != 5 or len(parts[0]) > HEADER_BYTES_MAX:
        raise Undecryptable(Failure.MALFORMED)
    try:
        segment = parts[0] + b"=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(segment))
    except (binascii.Error, ValueError, RecursionError):
        raise Undecryptable(Failure.MALFORMED) from None
    if not isinstance(header, dict):
        raise Undecryptable(Failure.MALFORMED)
    return header


def _content(encrypted: EncryptedNotification, plaintext: bytes) -> bytes:
    """The notification as if it had come in clear: the plaintext where the JWE was.

    A decrypted object is the notification, and fields in clear beside ``encData`` fill only
    what it lacks; anything else decrypted there is the notification's payload. The plaintext
    is kept byte for byte (its amounts stay exact); the clear fields are written again.
    """
    if encrypted.shape is Shape.BARE or not encrypted.beside:
        return plaintext
    try:
        outer = json.loads(
            encrypted.body, parse_float=_Number, parse_int=_Number, parse_constant=_refuse
        )
        inner = json.loads(plaintext) if encrypted.shape is not Shape.PAYLOAD else None
    except (ValueError, RecursionError):
        return plaintext  # read as it is: the reader says what is wrong with it
    assert isinstance(outer, dict) and encrypted.field is not None
    del outer[encrypted.field]
    try:
        return _put_back(encrypted, outer, inner, plaintext)
    except RecursionError:  # clear fields nested deeper than they can be written again
        return plaintext


def _put_back(
    encrypted: EncryptedNotification, outer: dict[str, Any], inner: Any, plaintext: bytes
) -> bytes:
    assert encrypted.field is not None
    if isinstance(inner, dict):
        kept = {name: value for name, value in outer.items() if name not in inner}
        inner_members = plaintext.strip()[1:-1].strip()
        separator = b"," if kept and inner_members else b""
        return b"{" + _members(kept) + separator + inner_members + b"}"
    field = encrypted.field if encrypted.shape is Shape.PAYLOAD else PAYLOAD_FIELDS[0]
    outer.pop(field, None)
    separator = b"," if outer else b""
    return b"{" + _members(outer) + separator + json.dumps(field).encode() + b":" + plaintext + b"}"


class _Number(str):
    """A JSON number's own text, written back unchanged."""


def _members(document: dict[str, Any]) -> bytes:
    return ",".join(f"{json.dumps(k)}:{_written(v)}" for k, v in document.items()).encode()


def _written(value: Any) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + _members(value).decode() + "}"
    if isinstance(value, list):
        return "[" + ",".join(_written(item) for item in value) + "]"
    return json.dumps(value)


def encrypt_notification(
    notification: bytes,
    certificate: x509.Certificate,
    shape: Shape = Shape.ENC_DATA,
    *,
    kid: str | None = None,
    issued_at: int | None = None,
) -> bytes:
    """The body a sender encrypting ``notification`` for ``certificate`` sends: a JWE with the
    header Cybersource's SDK writes (``alg``, ``enc``, ``kid``: the subject's serialNumber,
    ``iat``), wrapped in ``shape``. For the sandbox and tests."""
    header: dict[str, Any] = {"alg": KEY_ALGORITHM, "enc": CONTENT_ALGORITHM}
    header["kid"] = kid if kid is not None else _subject_serial_number(certificate)
    header["iat"] = int(time.time()) if issued_at is None else issued_at
    if shape is Shape.PAYLOAD:
        document = json.loads(notification, parse_float=_Number, parse_int=_Number)
        field = next((name for name in PAYLOAD_FIELDS if name in document), PAYLOAD_FIELDS[0])
        token = _encrypt(header, _written(document.get(field)).encode(), certificate)
        document[field] = {ENCRYPTED_FIELDS[0]: token}
        return b"{" + _members(document) + b"}"
    token = _encrypt(header, notification, certificate)
    if shape is Shape.BARE:
        return token.encode()
    return json.dumps({str(shape): token}).encode()


def _encrypt(header: dict[str, Any], plaintext: bytes, certificate: x509.Certificate) -> str:
    public_key = RSAKey.import_key(certificate.public_key())  # type: ignore[arg-type]
    return jwe.encrypt_compact(header, plaintext, public_key, registry=_registry(len(plaintext)))


def _subject_serial_number(certificate: x509.Certificate) -> str:
    for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER):
        return str(attribute.value)
    return str(certificate.serial_number)
