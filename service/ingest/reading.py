"""What a verified delivery's body says: the one reader used on receipt and on replay.

Pure: no I/O, no clock. Given the same body, headers and signature scope it gives the same
answer, so a delivery replayed from the inbox is appended exactly as it would have been when
it arrived (same facts, same idempotency keys).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from service.cybersource.envelope import DeliveryHeaders, UnusableBody
from service.cybersource.envelope_decoding import decode_envelope
from service.cybersource.message_encryption import Failure
from service.domain.events import NewEvent
from service.ingest.notification import (
    EnvelopeContradictsPayload,
    Notification,
    SignatureScope,
    read_notification,
)
from service.ingest.translation import UnmodelledEventType, notification_events


@dataclass(frozen=True, slots=True)
class ReadDelivery:
    """A notification the ledger records: its facts, ready to append."""

    notification: Notification
    events: list[NewEvent]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Signed, but the ledger cannot turn it into facts: a dead letter."""

    problem: str

    @property
    def reason(self) -> str:
        return f"unusable_body: {self.problem}"


@dataclass(frozen=True, slots=True)
class Undecrypted:
    """Signed, encrypted, and not decrypted (no key, or a broken JWE): a dead letter that a
    replay reads once its key is configured. ``failure`` says why, never the content."""

    failure: Failure

    @property
    def problem(self) -> str:
        # The same answer whatever the failure: the inbox's reason holds it.
        return "the encrypted notification could not be decrypted; it is kept for review"

    @property
    def reason(self) -> str:
        return f"undecryptable: {self.failure.description}"


@dataclass(frozen=True, slots=True)
class ForeignOrganization:
    """Signed with a merchant's webhook key, about an organization that merchant does not act
    for (a key leaked to, or misconfigured for, another merchant): a dead letter, which a
    replay reads once the merchants configured say the organization is the key's."""

    organization_id: str

    @property
    def problem(self) -> str:
        return (
            f"organization {self.organization_id[:100]!r} is not one the signing key's merchant"
            " acts for"
        )

    @property
    def reason(self) -> str:
        return f"foreign_organization: {self.problem}"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A genuine notification of a type the ledger does not record."""

    event_type: str

    @property
    def reason(self) -> str:
        return f"event type {self.event_type}"


@dataclass(frozen=True, slots=True)
class Contradiction:
    """Only the payload is signed, and the unsigned envelope around it says otherwise."""

    problem: str

    @property
    def reason(self) -> str:
        return f"envelope_mismatch: {self.problem}"


Reading = ReadDelivery | Unreadable | Undecrypted | ForeignOrganization | Ignored | Contradiction


def read_delivery(
    body: bytes,
    headers: DeliveryHeaders,
    scope: SignatureScope,
    *,
    items_per_delivery_max: int,
    signed_at: datetime,
    organizations: Collection[str] | None = None,
) -> Reading:
    """``organizations``: those the signing key's merchant acts for (None: any)."""
    try:
        notification = read_notification(decode_envelope(body), headers, scope)
        if len(notification.items) > items_per_delivery_max:
            # Each item is validated, hashed and appended in one transaction: a signed body
            # of a million items would hold the append lock for minutes.
            raise UnusableBody(f"the payload holds more than {items_per_delivery_max} items")
        named = notification.organization_id
        if organizations is not None and named is not None and named not in organizations:
            return ForeignOrganization(named)
        events = notification_events(notification, signed_at)
        if organizations is not None:
            # The organization each fact is recorded under, however the payload wrote it (an
            # organizationId given as a JSON number names no organization above, but one here).
            for event in events:
                recorded = event.data.get("organizationId")
                if isinstance(recorded, str) and recorded and recorded not in organizations:
                    return ForeignOrganization(recorded)
        return ReadDelivery(notification, events)
    except EnvelopeContradictsPayload as contradiction:
        return Contradiction(str(contradiction))
    except UnusableBody as problem:
        return Unreadable(str(problem))
    except UnmodelledEventType as unmodelled:
        return Ignored(str(unmodelled))
