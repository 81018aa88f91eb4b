"""Which notifications the sandbox encrypts, and how: per organization and event type, the
certificate a merchant gave Cybersource for message-level encryption (what
``POST /kms/egress/v2/keys-asym`` uploads), the shape the JWE travels in, and what the signature
covers.

The signature is made as for a clear notification, over the body as sent (the encrypted one,
which the one integration reading encrypted notifications checks) or, if asked, over the
clear notification; in the delivery's signed form when that body has a payload to sign, else
over its raw bytes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from service.cybersource.message_encryption import Shape, encrypt_notification


class SignatureCovers(StrEnum):
    ENCRYPTED = "encrypted"
    DECRYPTED = "decrypted"


@dataclass(frozen=True)
class NotificationCertificate:
    certificate: x509.Certificate
    shape: Shape
    signature_covers: SignatureCovers

    def encrypt(self, notification: bytes) -> bytes:
        """The body to send: encrypted afresh (a new content key) on every attempt."""
        return encrypt_notification(notification, self.certificate, self.shape)


class NotificationEncryption:
    def __init__(self) -> None:
        self._certificates: dict[tuple[str, str], NotificationCertificate] = {}

    def register(
        self,
        organization_id: str,
        certificate_pem: bytes,
        event_types: Iterable[str],
        shape: Shape | str = Shape.ENC_DATA,
        signature_covers: SignatureCovers | str = SignatureCovers.ENCRYPTED,
    ) -> NotificationCertificate:
        """Encrypt the organization's notifications of these event types from now on (a later
        registration for the same event type replaces the earlier: a key rotation).
        ValueError for a certificate that is not PEM, or a shape or signed form unknown."""
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        registered = NotificationCertificate(
            certificate, Shape(shape), SignatureCovers(signature_covers)
        )
        for event_type in event_types:
            self._certificates[(organization_id, event_type)] = registered
        return registered

    def for_notification(
        self, organization_id: str, event_type: str
    ) -> NotificationCertificate | None:
        return self._certificates.get((organization_id, event_type))
