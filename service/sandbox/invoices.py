"""The sandbox's invoices and the lifecycle rules Cybersource documents for them.

Every action takes the moment it happens and returns the history entry it records, so the
caller can date the webhook against it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from service.domain.status import InvoiceStatus
from service.sandbox.errors import ActionNotAllowed

HISTORY_DATE_STEP = timedelta(milliseconds=1)
PAYMENT_LINK_BASE = "https://businesscentertest.cybersource.com/ebc2/invoicing/payInvoice"


class DeliveryMode(StrEnum):
    """As the responses spell it; requests say ``email`` or ``none``."""

    EMAIL = "Email"
    NONE = "None"


@dataclass(frozen=True)
class LineItem:
    product_sku: str | None = None
    product_name: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    discount_amount: Decimal | None = None
    discount_percent: Decimal | None = None
    tax_amount: Decimal | None = None
    tax_rate: Decimal | None = None
    total_amount: Decimal | None = None


@dataclass(frozen=True)
class InvoiceContent:
    """What a create or update request says; an update replaces all of it."""

    due_date: date
    total_amount: Decimal
    currency: str
    customer_name: str | None = None
    customer_email: str | None = None
    merchant_customer_id: str | None = None
    company_name: str | None = None
    description: str | None = None
    expiration_date: date | None = None
    delivery_mode: DeliveryMode = DeliveryMode.EMAIL
    allow_partial_payments: bool = False
    request_phone: bool = False
    request_shipping: bool = False
    minimum_partial_amount: Decimal | None = None
    sub_amount: Decimal | None = None
    discount_amount: Decimal | None = None
    discount_percent: Decimal | None = None
    freight_amount: Decimal | None = None
    freight_taxable: bool | None = None
    freight_tax_rate: Decimal | None = None
    tax_type: str | None = None
    tax_amount: Decimal | None = None
    tax_rate: Decimal | None = None
    line_items: tuple[LineItem, ...] = ()


class TransactionDetailsShown(StrEnum):
    """What a PAYMENT history entry shows of its transaction: the documented shape carries
    ``transactionDetails: {transactionId, amount}``, but the documented examples often leave
    out the amount or the whole object, and consumers must cope with each."""

    AMOUNT = "amount"  # transactionId and amount
    TRANSACTION_ID = "transaction-id"  # transactionId only
    NONE = "none"  # no transactionDetails


class HistoryEvent(StrEnum):
    DRAFT = "DRAFT"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    SEND = "SEND"
    RESEND = "RESEND"
    REMINDER = "REMINDER"
    PAYMENT = "PAYMENT"
    CANCEL = "CANCEL"
    PENDING = "PENDING"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Payment:
    amount: Decimal
    transaction_id: str
    # Chosen when the customer pays, so an entry reads the same in every later answer.
    shown: TransactionDetailsShown = TransactionDetailsShown.AMOUNT


@dataclass(frozen=True)
class HistoryEntry:
    event: HistoryEvent
    date: datetime
    payment: Payment | None = None


def new_payment_link() -> str:
    return f"{PAYMENT_LINK_BASE}/{secrets.token_urlsafe(48)}?version=v2.1"


@dataclass
class SandboxInvoice:
    invoice_number: str
    content: InvoiceContent
    created_at: datetime
    payment_link: str = field(default_factory=new_payment_link)
    status: InvoiceStatus = InvoiceStatus.DRAFT
    balance_amount: Decimal = Decimal(0)
    history: list[HistoryEntry] = field(default_factory=list)
    payment_under_review: Payment | None = None
    # Told after every change, with the entry that records it: every change to the invoice is
    # recorded in its history.
    on_change: Callable[[SandboxInvoice, HistoryEntry], None] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def draft(cls, invoice_number: str, content: InvoiceContent, now: datetime) -> SandboxInvoice:
        invoice = cls(invoice_number, content, created_at=now)
        invoice.balance_amount = content.total_amount
        invoice._record(HistoryEvent.DRAFT, now)
        return invoice

    @property
    def paid_amount(self) -> Decimal:
        return self.content.total_amount - self.balance_amount

    def publish(self, now: datetime) -> HistoryEntry:
        self._require(self.status is InvoiceStatus.DRAFT, "only a draft can be published")
        self.status = InvoiceStatus.CREATED
        return self._record(HistoryEvent.CREATE, now)

    def send(self, now: datetime) -> HistoryEntry:
        """Send a draft or created invoice, or resend a sent or partially paid one."""
        sendable = (InvoiceStatus.DRAFT, InvoiceStatus.CREATED)
        resendable = (InvoiceStatus.SENT, InvoiceStatus.PARTIAL)
        self._require(
            self.status in sendable + resendable, f"a {self.status} invoice cannot be sent"
        )
        if self.status in resendable:
            return self._record(HistoryEvent.RESEND, now)
        self.status = InvoiceStatus.SENT
        return self._record(HistoryEvent.SEND, now)

    def remind(self, now: datetime) -> HistoryEntry:
        sent = (InvoiceStatus.SENT, InvoiceStatus.PARTIAL)
        self._require(self.status in sent, "only a sent, unpaid invoice gets reminders")
        return self._record(HistoryEvent.REMINDER, now)

    def cancel(self, now: datetime) -> HistoryEntry:
        self._require(self.status is not InvoiceStatus.PENDING, "a payment is under review")
        self._require(self.paid_amount == 0, "only an invoice without payment can be canceled")
        self._require(self.status is not InvoiceStatus.CANCELED, "already canceled")
        self.status = InvoiceStatus.CANCELED
        return self._record(HistoryEvent.CANCEL, now)

    def update(self, content: InvoiceContent, now: datetime) -> HistoryEntry:
        """Replace the content; a new e-mail address invalidates the old payment link."""
        self._require(self.status is not InvoiceStatus.PENDING, "a payment is under review")
        self._require(self.paid_amount == 0, "only an invoice without payment can be updated")
        self._require(self.status is not InvoiceStatus.CANCELED, "a canceled invoice is closed")
        if content.customer_email != self.content.customer_email:
            self.payment_link = new_payment_link()
        self.content = content
        self.balance_amount = content.total_amount
        return self._record(HistoryEvent.UPDATE, now)

    def pay(self, payment: Payment, now: datetime) -> HistoryEntry:
        self._require_payable()
        return self._settle(payment, now)

    def hold_payment_for_review(self, payment: Payment, now: datetime) -> HistoryEntry:
        """The customer paid and fraud management holds the payment: PENDING."""
        self._require_payable()
        self._check_payment_amount(payment.amount)
        self.payment_under_review = payment
        self.status = InvoiceStatus.PENDING
        return self._record(HistoryEvent.PENDING, now, payment)

    def accept_payment_under_review(self, now: datetime) -> HistoryEntry:
        payment = self._take_payment_under_review()
        return self._settle(payment, now)

    def reject_payment_under_review(self, now: datetime) -> HistoryEntry:
        """Back to SENT, as the invoicing guide says ("reject (then back to SENT)"), even when
        an earlier payment was accepted: the balance still shows what that one paid."""
        payment = self._take_payment_under_review()
        self.status = InvoiceStatus.SENT
        return self._record(HistoryEvent.REJECTED, now, payment)

    def _require_payable(self) -> None:
        self._require(self.status is not InvoiceStatus.PENDING, "a payment is already in review")
        payable = (InvoiceStatus.CREATED, InvoiceStatus.SENT, InvoiceStatus.PARTIAL)
        self._require(self.status in payable, f"a {self.status} invoice cannot be paid")

    def _take_payment_under_review(self) -> Payment:
        payment = self.payment_under_review
        if payment is None:
            raise ActionNotAllowed("no payment is under review")
        self.payment_under_review = None
        return payment

    def _settle(self, payment: Payment, now: datetime) -> HistoryEntry:
        self._check_payment_amount(payment.amount)
        self.balance_amount -= payment.amount
        self.status = InvoiceStatus.PAID if self.balance_amount == 0 else InvoiceStatus.PARTIAL
        return self._record(HistoryEvent.PAYMENT, now, payment)

    def _check_payment_amount(self, amount: Decimal) -> None:
        self._require(Decimal(0) < amount <= self.balance_amount, "amount exceeds the balance")
        if amount < self.balance_amount:
            self._require(self.content.allow_partial_payments, "partial payments are not allowed")
            minimum = self.content.minimum_partial_amount
            self._require(minimum is None or amount >= minimum, "below the minimum partial amount")

    def _record(
        self, event: HistoryEvent, now: datetime, payment: Payment | None = None
    ) -> HistoryEntry:
        # Dates are written to the millisecond; two changes within one still get distinct,
        # ordered dates, as Cybersource's history never shows two at the same instant.
        if self.history and now <= self.history[-1].date:
            now = self.history[-1].date + HISTORY_DATE_STEP
        entry = HistoryEntry(event, now, payment)
        self.history.append(entry)
        if self.on_change is not None:
            self.on_change(self, entry)
        return entry

    @staticmethod
    def _require(condition: bool, message: str) -> None:
        if not condition:
            raise ActionNotAllowed(message)
