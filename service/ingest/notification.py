"""The ledger's reading of a Cybersource notification: which of its fields decide a fact.

Every field that decides a fact (event type, organization, items) comes from signed content;
the unsigned envelope around a signed payload may agree with it, never add to it, and
headers only fill identifiers the ledger does not decide by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service.cybersource.envelope import (
    IDENTIFIER_LENGTH_MAX,
    DeliveryHeaders,
    Envelope,
    UnusableBody,
    is_storable,
    item_text,
    parse_event_date,
    payload_items,
    read_envelope,
)
from service.cybersource.envelope_decoding import PlainEnvelope


class EnvelopeContradictsPayload(Exception):
    """Only the payload is signed, and the unsigned envelope around it says something else."""


# The headers a delivery is kept with in the inbox: what reading it needs again (a replay
# reads with the same headers as on receipt) and what an operator looks for. Never the
# signature itself, nor anything else the sender's proxies added.
KEPT_HEADERS = (
    "content-type",
    "v-c-event-type",
    "v-c-webhook-id",
    "v-c-organization-id",
    "v-c-product-name",
    "v-c-retry-count",
    "v-c-transaction-trace-id",
)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The kept headers present, each bounded and storable (others are dropped)."""
    kept = {}
    for name in KEPT_HEADERS:
        value = headers.get(name)
        if value is not None and is_storable(value):
            kept[name] = value[:IDENTIFIER_LENGTH_MAX]
    return kept


@dataclass(frozen=True, slots=True)
class SignatureScope:
    """What the verified signature covers.

    ``envelope_signed``: the whole body was signed (the raw form). Otherwise only the payload
    was (the payload form), ``payload_digest`` names it (SHA-256 hex of its JSON.stringify),
    and ``signed_at`` (the signature's ``t``) bounds the unsigned ``eventDate``.
    """

    envelope_signed: bool = True
    signed_at: datetime | None = None
    payload_digest: str | None = None


WHOLE_BODY_SIGNED = SignatureScope()
PAYLOAD_DIGEST_PREFIX = "payload-sha256:"


@dataclass(frozen=True, slots=True)
class Notification:
    """One delivery's notification.

    Every field that decides a fact (event type, organization, items) comes from signed
    content; headers only fill identifiers the ledger does not decide by. When only the
    payload is signed (``envelope_signed`` is False), ``notification_id`` is
    ``payload-sha256:<hex>`` naming the signed payload, so a replay of it under another
    unsigned id is the same notification; the id the envelope claimed is kept in
    ``claimed_notification_id`` for operators, and ``event_date`` is at most the signature time.
    """

    notification_id: str | None
    event_type: str | None
    event_date: datetime | None
    event_date_text: str | None
    webhook_id: str | None
    organization_id: str | None
    product_id: str | None
    retry_number: int | None
    items: tuple[Mapping[str, Any], ...]
    envelope_signed: bool = True
    claimed_notification_id: str | None = None
    # No signed content names the organization; the V-C-Organization-Id header did. It names
    # the invoice's organization but never decides whether a notification is a new fact.
    organization_from_header: bool = False


def read_notification(
    body: Envelope | PlainEnvelope | Any,
    headers: DeliveryHeaders,
    scope: SignatureScope = WHOLE_BODY_SIGNED,
) -> Notification:
    """``body``: the parsed JSON, or its envelope already read (``decode_envelope``)."""
    envelope = body if isinstance(body, Envelope | PlainEnvelope) else read_envelope(body)
    items = payload_items(envelope.payload)
    signed_event_type = _agreed_item_field(items, "eventType")
    signed_organization = _agreed_item_field(items, "organizationId", "organizationID")
    event_date = parse_event_date(envelope.event_date)
    notification = Notification(
        notification_id=envelope.notification_id,
        event_type=envelope.event_type or signed_event_type,
        event_date=event_date,
        event_date_text=envelope.event_date,
        webhook_id=envelope.webhook_id or headers.webhook_id,
        organization_id=envelope.organization_id or signed_organization,
        product_id=envelope.product_id or headers.product_name,
        retry_number=envelope.retry_number
        if envelope.retry_number is not None
        else headers.retry_count,
        items=items,
    )
    if scope.envelope_signed:
        if notification.event_type is None:
            # V-C-Event-Type is unsigned: it may not decide what a signed body means.
            raise UnusableBody("the signed body names no eventType")
        return _organization_from_header(notification, headers)
    # Only the payload is signed: the envelope may agree with it, never add to it.
    if signed_event_type is None:
        raise UnusableBody("the signed payload names no eventType")
    _refuse_contradiction("eventType", envelope.event_type, signed_event_type)
    _refuse_contradiction("organizationId", envelope.organization_id, signed_organization)
    event_date_text = envelope.event_date
    if event_date is not None and scope.signed_at is not None and event_date > scope.signed_at:
        # A notification is signed after its event: an unsigned later date is not believed.
        event_date = scope.signed_at
        event_date_text = scope.signed_at.isoformat()
    assert scope.payload_digest is not None, "a payload-form signature names its payload"
    notification = replace(
        notification,
        notification_id=PAYLOAD_DIGEST_PREFIX + scope.payload_digest,
        event_type=signed_event_type,
        event_date=event_date,
        event_date_text=event_date_text,
        organization_id=signed_organization,
        envelope_signed=False,
        claimed_notification_id=envelope.notification_id,
    )
    return _organization_from_header(notification, headers)


def _organization_from_header(notification: Notification, headers: DeliveryHeaders) -> Notification:
    if notification.organization_id is not None or headers.organization_id is None:
        return notification
    return replace(
        notification, organization_id=headers.organization_id, organization_from_header=True
    )


def _refuse_contradiction(name: str, unsigned: str | None, signed: str | None) -> None:
    # Where the payload is silent the unsigned value is merely not used (a version 3
    # envelope names its organization only outside the payload).
    if unsigned is not None and signed is not None and unsigned != signed:
        raise EnvelopeContradictsPayload(f"the unsigned envelope's {name} is not the signed one")


def _agreed_item_field(items: tuple[Mapping[str, Any], ...], *names: str) -> str | None:
    """The value every payload item gives (items that give none abstain)."""
    values = {value for item in items if (value := item_text(item, *names)) is not None}
    if len(values) > 1:
        raise UnusableBody(f"payload items disagree on {names[0]}")
    return next(iter(values), None)
