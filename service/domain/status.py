"""The vocabulary of an invoice's life: Cybersource's statuses and the notification types the
ledger's rules group together. Shared by the ledger and the sandbox; no rule lives here."""

from __future__ import annotations

from enum import StrEnum

from service.domain.events import InvoiceEventType

E = InvoiceEventType


class InvoiceStatus(StrEnum):
    """Cybersource's invoice statuses (one L in CANCELED)."""

    DRAFT = "DRAFT"
    CREATED = "CREATED"
    SENT = "SENT"
    PARTIAL = "PARTIAL"
    PAID = "PAID"
    CANCELED = "CANCELED"
    PENDING = "PENDING"


OPEN_STATUSES = frozenset(
    {InvoiceStatus.CREATED, InvoiceStatus.SENT, InvoiceStatus.PARTIAL, InvoiceStatus.PENDING}
)
FINAL_STATUSES = frozenset({InvoiceStatus.PAID, InvoiceStatus.CANCELED})
# Notifications that say money arrived.
PAYMENT_NOTIFICATION_TYPES = frozenset({E.INVOICE_PAID, E.INVOICE_PARTIALLY_PAID})
# Notifications that can only be sent once money has arrived: the total they are about is
# final, and the balance they state is one that payments alone have lowered since.
AFTER_PAYMENT_NOTIFICATION_TYPES = PAYMENT_NOTIFICATION_TYPES | {E.INVOICE_PARTIAL_RESENT}
REMINDER_NOTIFICATION_TYPES = frozenset({E.INVOICE_REMINDER_SENT, E.INVOICE_OVERDUE_REMINDER_SENT})
