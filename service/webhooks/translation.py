"""Turning a verified invoicing notification into the ledger's facts."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE, EventSource, NewEvent
from service.webhooks.envelope import InvoiceData, Notification, UnusableBody, read_invoice_data


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
    invoices = [read_invoice_data(item, index) for index, item in enumerate(notification.items)]
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
                data=_event_data(notification, invoice),
            )
        )
    return events


KEY_PREFIX = "cybersource:notification:"
KEY_LENGTH_MAX = 300  # the events table allows 400


def idempotency_key(notification: Notification, invoice: InvoiceData) -> str:
    """Names the notification, not the delivery: retries share it, trace ids never enter it."""
    if notification.notification_id:
        return KEY_PREFIX + notification.notification_id
    parts = (
        notification.webhook_id or "-",
        notification.event_type or "-",
        invoice.invoice_number,
        notification.event_date_text or "-",
    )
    key = KEY_PREFIX + "|".join(parts)
    if len(key) > KEY_LENGTH_MAX:
        key = KEY_PREFIX + "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _event_data(notification: Notification, invoice: InvoiceData) -> dict[str, Any]:
    customer = None
    if invoice.payer_name or invoice.email_to:
        customer = {"name": invoice.payer_name, "email": invoice.email_to}
    payment = None
    if invoice.transaction_id or invoice.payment_amount is not None:
        payment = {
            "transactionId": invoice.transaction_id,
            "amount": _money(invoice.payment_amount),
        }
    return {
        "invoiceNumber": invoice.invoice_number,
        "balanceAmount": _money(invoice.balance_amount),
        "totalAmount": _money(invoice.total_amount),
        "currency": invoice.currency,
        "dueDate": invoice.due_date.isoformat() if invoice.due_date else None,
        "customer": customer,
        "payment": payment,
        "notification": {
            "id": notification.notification_id,
            "webhookId": notification.webhook_id,
            "eventType": notification.event_type,
            "eventDate": notification.event_date_text,
            "organizationId": notification.organization_id or invoice.organization_id,
            "productId": notification.product_id,
        },
    }


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")
