"""The facts the ledger records, named in the past tense, and what each one carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventSource(StrEnum):
    """Who established a fact: recorded on every event so the audit trail shows its origin."""

    WEBHOOK = "webhook"
    RECONCILER = "reconciler"
    OPERATOR = "operator"


class InvoiceEventType(StrEnum):
    INVOICE_SENT = "InvoiceSent"
    INVOICE_CANCELED = "InvoiceCanceled"
    INVOICE_PAID = "InvoicePaid"
    INVOICE_PARTIALLY_PAID = "InvoicePartiallyPaid"
    INVOICE_REMINDER_SENT = "InvoiceReminderSent"
    INVOICE_OVERDUE_REMINDER_SENT = "InvoiceOverdueReminderSent"
    INVOICE_PARTIAL_RESENT = "InvoicePartialResent"
    # Facts the reconciler establishes from Get Invoice Details (its invoiceHistory has
    # events no webhook reports). Their data uses the same field names as the others.
    INVOICE_OBSERVED = "InvoiceObserved"  # a full snapshot, including "status"
    INVOICE_DRAFTED = "InvoiceDrafted"
    INVOICE_CREATED = "InvoiceCreated"
    INVOICE_UPDATED = "InvoiceUpdated"
    INVOICE_PAYMENT_PENDING = "InvoicePaymentPending"
    INVOICE_PAYMENT_REJECTED = "InvoicePaymentRejected"
    PAYMENT_RECEIVED = "PaymentReceived"
    # What the Transaction Details API answered for a payment's transaction: its amount, for
    # a history PAYMENT entry that carries none.
    TRANSACTION_OBSERVED = "TransactionObserved"
    # An operator erased a payer's personal data (their data key was deleted): no fact about
    # the invoice itself, recorded in each stream that named the payer, for the audit trail.
    PERSONAL_DATA_ERASED = "PersonalDataErased"


# Cybersource's invoicing notification types and the fact each one states.
EVENT_TYPE_BY_NOTIFICATION_TYPE: Mapping[str, InvoiceEventType] = {
    "invoicing.customer.invoice.send": InvoiceEventType.INVOICE_SENT,
    "invoicing.customer.invoice.cancel": InvoiceEventType.INVOICE_CANCELED,
    "invoicing.customer.invoice.paid": InvoiceEventType.INVOICE_PAID,
    "invoicing.customer.invoice.partial-payment": InvoiceEventType.INVOICE_PARTIALLY_PAID,
    "invoicing.customer.invoice.reminder": InvoiceEventType.INVOICE_REMINDER_SENT,
    "invoicing.customer.invoice.overdue-reminder": InvoiceEventType.INVOICE_OVERDUE_REMINDER_SENT,
    "invoicing.customer.invoice.partial-resend": InvoiceEventType.INVOICE_PARTIAL_RESENT,
}

# 2: every fact names its organization; history entries carry their occurrence.
CURRENT_SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A fact about one invoice, ready to be appended to its stream.

    ``occurred_at`` is the provider's time (timezone-aware); ``idempotency_key`` names the
    fact itself, so recording it twice is detectable wherever the second copy comes from.
    ``data`` holds only JSON values: amounts are decimal strings, never floats.
    """

    stream_id: str
    type: str
    occurred_at: datetime
    source: EventSource
    idempotency_key: str
    data: Mapping[str, Any]
    schema_version: int = CURRENT_SCHEMA_VERSION
    # Whether the provider time is part of what the fact says. Not when it is only a
    # delivery's signature time (a notification without eventDate): a retry signed later is
    # the same fact.
    time_is_content: bool = True

    def __post_init__(self) -> None:
        if not self.stream_id:
            raise ValueError("an event needs a stream id")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the store holds it, with its global position and per-stream version."""

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    source: EventSource
    idempotency_key: str
    data: Mapping[str, Any]
