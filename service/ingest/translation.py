"""Turning a verified invoicing notification into the ledger's facts."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from service.cybersource.envelope import InvoiceData, UnusableBody
from service.cybersource.envelope_decoding import PlainInvoiceData, decode_invoice_data
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE, EventSource, NewEvent
from service.domain.payloads import (
    NotificationIdentity,
    NotificationReceived,
    PaymentReported,
    StatedFields,
    encode,
)
from service.ingest.notification import Notification


class UnmodelledEventType(Exception):
    """A genuine notification of a type the ledger does not record (e.g. a test webhook)."""


def notification_events(notification: Notification, signed_at: datetime) -> list[NewEvent]:
    """One event per invoice the notification speaks of (in practice, exactly one)."""
    event_type = EVENT_TYPE_BY_NOTIFICATION_TYPE.get(notification.event_type or "")
    if event_type is None:
        raise UnmodelledEventType(notification.event_type or "no event type")
    if not notification.items:
        raise UnusableBody("the notification has no payload")
    # Cybersource stamps eventDate; the signature time is the next best witness of when.
    occurred_at = notification.event_date or signed_at
    invoices = [decode_invoice_data(item, index) for index, item in enumerate(notification.items)]
    events = []
    for index, invoice in enumerate(invoices):
        key = idempotency_key(notification, invoice)
        if len(invoices) > 1:
            key = f"{key}#{index}"
        events.append(
            NewEvent(
                stream_id=invoice.invoice_number,
                type=event_type,
                occurred_at=occurred_at,
                source=EventSource.WEBHOOK,
                idempotency_key=key,
                data=encode(_fact(notification, invoice)),
                # Without eventDate the time is the delivery's signature time, which a retry
                # may change: it must not make a retry look like a different fact.
                time_is_content=notification.event_date is not None,
            )
        )
    return events


KEY_PREFIX = "cybersource:notification:"
KEY_LENGTH_MAX = 300  # the events table allows 400


def idempotency_key(notification: Notification, invoice: InvoiceData | PlainInvoiceData) -> str:
    """Names the notification, not the delivery: retries share it, trace ids never enter it.

    Without a notification id: the subscription, type, organization, invoice and eventDate
    name it; without an eventDate either, a digest of the payload does (two different
    notifications never share a key; a retry of one always does).
    """
    if notification.notification_id:
        return KEY_PREFIX + notification.notification_id
    moment = notification.event_date_text or "payload-sha256:" + _payload_digest(notification)
    # An unsigned header may name the organization, never make a notification a new fact.
    named = None if notification.organization_from_header else notification.organization_id
    parts = (
        notification.webhook_id or "-",
        notification.event_type or "-",
        named or invoice.organization_id or "-",
        invoice.invoice_number,
        moment,
    )
    key = KEY_PREFIX + "|".join(parts)
    if len(key) > KEY_LENGTH_MAX:
        key = KEY_PREFIX + "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _payload_digest(notification: Notification) -> str:
    canonical = json.dumps(
        list(notification.items), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fact(
    notification: Notification, invoice: InvoiceData | PlainInvoiceData
) -> NotificationReceived:
    payment = None
    if invoice.transaction_id or invoice.payment_amount is not None:
        payment = PaymentReported(invoice.transaction_id, invoice.payment_amount)
    return NotificationReceived(
        organization_id=notification.organization_id or invoice.organization_id,
        invoice_number=invoice.invoice_number,
        stated=StatedFields(
            currency=invoice.currency,
            total_amount=invoice.total_amount,
            balance_amount=invoice.balance_amount,
            due_date=invoice.due_date,
            customer_name=invoice.payer_name,
            customer_email=invoice.email_to,
        ),
        payment=payment,
        notification=NotificationIdentity(
            notification_id=notification.notification_id,
            webhook_id=notification.webhook_id,
            event_type=notification.event_type,
            event_date=notification.event_date_text,
            product_id=notification.product_id,
        ),
    )
