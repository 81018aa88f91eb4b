"""Encrypted deliveries: whose signature covers what, and the notification read from them.

What Cybersource signs when it encrypts a notification is not documented. The one integration
that reads encrypted notifications (a third party's) checks the signature over the body as
received, before decrypting; nothing shows the decrypted content signed. So:

* ``encrypted``: the signature covers the body as received (either form of
  ``webhook_signature``), and decryption happens after it. A delivery that verifies but does
  not decrypt is kept whole as a dead letter and replayed once its key is configured.
* ``decrypted``: the signature covers the clear notification; the body is decrypted first (one
  RSA operation), and a body that does not decrypt cannot be verified, so it is refused 401
  like any other mismatch (and Cybersource retries it).
* ``auto`` (default): the encrypted form first, then the decrypted one.

Whichever form verifies, a refusal is the same ``bad_signature`` answer whether or not the
body decrypted: the receiver offers no decryption oracle. Decryption is not authentication
(anyone with the certificate can encrypt), so only what a signature covers decides a fact: a
decrypted payload under an unsigned envelope is read as a payload-form delivery is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.cybersource.message_encryption import (
    Decrypted,
    NotificationKeyring,
    Shape,
    Undecryptable,
    encrypted_notification,
)
from service.cybersource.webhook_signature import (
    AdmittedSignature,
    SignatureRejected,
    SignedContent,
    VerifiedSignature,
    WebhookVerifier,
    payload_content,
)
from service.ingest.notification import SignatureScope
from service.ingest.reading import Undecrypted, Unreadable


class SignatureCovers(StrEnum):
    AUTO = "auto"
    ENCRYPTED = "encrypted"
    DECRYPTED = "decrypted"


PayloadForm = Callable[[bytes], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Opened:
    """The notification to read, and what its signature covers."""

    content: bytes
    scope: SignatureScope
    decrypted: Decrypted | None = None


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    verified: VerifiedSignature
    # The body decrypted before its signature was checked (the decrypted forms only).
    decrypted: Decrypted | None = None


class NotificationDecryption:
    """The keyring and the signature rule, shared by the receiver and replay."""

    def __init__(
        self,
        keyring: NotificationKeyring | None = None,
        covers: SignatureCovers = SignatureCovers.AUTO,
    ) -> None:
        self.keyring = keyring or NotificationKeyring([])
        self.covers = covers

    async def verify(
        self,
        verifier: WebhookVerifier,
        admitted: AdmittedSignature,
        body: bytes,
        payload_form: PayloadForm,
    ) -> VerifiedDelivery:
        """The signature over the body as received or, failing that, over its decryption;
        ``SignatureRejected`` (bad_signature) when neither verifies, decrypted or not."""
        mismatch: SignatureRejected | None = None  # made only when it is raised
        if self.covers is not SignatureCovers.DECRYPTED:
            try:
                return VerifiedDelivery(
                    await verifier.verify_body_with(admitted, body, payload_form)
                )
            except SignatureRejected as refused:
                mismatch = refused
        mismatch = mismatch or SignatureRejected(
            "bad_signature", "the signature does not match the body"
        )
        encrypted = None
        if self.covers is not SignatureCovers.ENCRYPTED and len(self.keyring):
            encrypted = encrypted_notification(body)
        if encrypted is None:
            raise mismatch
        try:
            decrypted = self.keyring.decrypt(encrypted)
        except (Undecryptable, RecursionError):
            # Answered as any mismatch: which step failed is not for an unverified sender.
            raise mismatch from None
        verified = await verifier.verify_decrypted_with(
            admitted, decrypted.plaintext, decrypted.content, payload_form
        )
        return VerifiedDelivery(verified, decrypted)

    def open(
        self,
        body: bytes,
        signed_content: SignedContent | str | None,
        signed_at: datetime,
        *,
        payload_digest: str | None = None,
        decrypted: Decrypted | None = None,
    ) -> Opened | Undecrypted | Unreadable:
        """The notification a verified body carries, with what its signature covers.

        ``payload_digest``: the receiver's, for a clear payload-form delivery (computed off
        the event loop); recomputed when absent (replay).
        """
        form = SignedContent(signed_content or SignedContent.RAW)
        if decrypted is None:
            encrypted = encrypted_notification(body)
            if encrypted is None:
                return _clear(body, form, payload_digest, signed_at)
            try:
                decrypted = self.keyring.decrypt(encrypted)
            except Undecryptable as failure:
                return Undecrypted(failure.failure)
        return _decrypted(decrypted, form, signed_at)


def _clear(
    body: bytes, form: SignedContent, payload_digest: str | None, signed_at: datetime
) -> Opened | Unreadable:
    if form is not SignedContent.PAYLOAD:
        return Opened(body, SignatureScope(envelope_signed=True, signed_at=signed_at))
    if payload_digest is None:
        content = payload_content(body)
        if content is None:
            return Unreadable("the payload-signed body no longer has a payload to read")
        payload_digest = hashlib.sha256(content).hexdigest()
    scope = SignatureScope(
        envelope_signed=False, signed_at=signed_at, payload_digest=payload_digest
    )
    return Opened(body, scope)


def _decrypted(
    decrypted: Decrypted, form: SignedContent, signed_at: datetime
) -> Opened | Unreadable:
    shape = decrypted.encrypted.shape
    whole_body = shape is not Shape.PAYLOAD
    if form is SignedContent.RAW:
        # Every byte received is signed, the JWE too: what it decrypts to is Cybersource's.
        scope = SignatureScope(envelope_signed=True, signed_at=signed_at)
        return Opened(decrypted.content, scope, decrypted)
    if form is SignedContent.DECRYPTED_RAW and whole_body:
        # The plaintext is what is signed; clear fields beside it are not, so not read.
        scope = SignatureScope(envelope_signed=True, signed_at=signed_at)
        return Opened(decrypted.plaintext, scope, decrypted)
    if form is SignedContent.PAYLOAD and whole_body:
        return Unreadable("only a clear payload beside the encrypted notification is signed")
    # Only the payload is signed (encrypted, or decrypted): named by its clear content, so a
    # retry encrypted afresh is the same notification.
    content = payload_content(decrypted.content)
    if content is None:
        return Unreadable("the decrypted notification has no payload to read")
    digest = hashlib.sha256(content).hexdigest()
    scope = SignatureScope(envelope_signed=False, signed_at=signed_at, payload_digest=digest)
    return Opened(decrypted.content, scope, decrypted)
