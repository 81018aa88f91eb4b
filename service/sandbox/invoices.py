"""The sandbox's invoices and the lifecycle rules Cybersource documents for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


class ActionNotAllowed(Exception):
    """What Cybersource answers 400 ACTION_NOT_ALLOWED to."""


@dataclass
class SandboxInvoice:
    invoice_number: str
    total_amount: Decimal
    currency: str
    due_date: date
    customer_name: str | None = None
    customer_email: str | None = None
    allow_partial_payments: bool = False
    minimum_partial_amount: Decimal | None = None
    status: str = "DRAFT"
    balance_amount: Decimal = Decimal(0)
    history: list[dict[str, Any]] = field(default_factory=list)
    pending_payment: tuple[Decimal, str] | None = None

    def __post_init__(self) -> None:
        self.balance_amount = self.total_amount

    def record(self, event: str, **transaction: Any) -> None:
        entry: dict[str, Any] = {"event": event, "date": datetime.now(UTC).isoformat()}
        if transaction:
            entry["transactionDetails"] = transaction
        self.history.append(entry)

    def publish(self) -> None:
        self._require(self.status == "DRAFT", "only a draft can be published")
        self.status = "CREATED"
        self.record("CREATE")

    def send(self) -> None:
        self._require(
            self.status not in ("PAID", "CANCELED"), "a paid or canceled invoice cannot be sent"
        )
        resend = self.status in ("SENT", "PARTIAL")
        if self.status in ("DRAFT", "CREATED"):
            self.status = "SENT"
        self.record("RESEND" if resend else "SEND")

    def cancel(self) -> None:
        unpaid = self.balance_amount == self.total_amount
        self._require(unpaid, "only an invoice without payment can be canceled")
        self._require(self.status != "CANCELED", "already canceled")
        self.status = "CANCELED"
        self.record("CANCEL")

    def pay(self, amount: Decimal, transaction_id: str) -> None:
        payable = self.status in ("CREATED", "SENT", "PARTIAL", "PENDING")
        self._require(payable, f"cannot pay a {self.status} invoice")
        self._check_payment_amount(amount)
        self.balance_amount -= amount
        self.status = "PAID" if self.balance_amount == 0 else "PARTIAL"
        self.record("PAYMENT", transactionId=transaction_id, amount=str(amount))

    def update(self, total_amount: Decimal | None, due_date: date | None) -> None:
        unpaid = self.balance_amount == self.total_amount
        editable = self.status in ("DRAFT", "CREATED", "SENT") and unpaid
        self._require(editable, "only an invoice without payment can be updated")
        if total_amount is not None:
            self._require(total_amount > 0, "the total must be positive")
            self.total_amount = self.balance_amount = total_amount
        if due_date is not None:
            self.due_date = due_date
        self.record("UPDATE")

    def start_payment_under_review(self, amount: Decimal, transaction_id: str) -> None:
        """The customer paid and fraud management holds the payment: PENDING."""
        payable = self.status in ("CREATED", "SENT", "PARTIAL")
        self._require(payable, f"cannot start a payment on a {self.status} invoice")
        self._check_payment_amount(amount)
        self.pending_payment = (amount, transaction_id)
        self.status = "PENDING"
        self.record("PENDING")

    def accept_pending_payment(self) -> None:
        self._require(self.pending_payment is not None, "no payment is pending")
        assert self.pending_payment is not None
        amount, transaction_id = self.pending_payment
        self.pending_payment = None
        self.pay(amount, transaction_id)

    def reject_pending_payment(self) -> None:
        self._require(self.pending_payment is not None, "no payment is pending")
        self.pending_payment = None
        self.status = "PARTIAL" if self.balance_amount < self.total_amount else "SENT"
        self.record("REJECTED")

    def _check_payment_amount(self, amount: Decimal) -> None:
        self._require(Decimal(0) < amount <= self.balance_amount, "amount exceeds the balance")
        if amount < self.balance_amount:
            self._require(self.allow_partial_payments, "partial payments are not allowed")
            minimum = self.minimum_partial_amount
            self._require(minimum is None or amount >= minimum, "below the minimum partial amount")

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            raise ActionNotAllowed(message)

    def details(self) -> dict[str, Any]:
        return {
            "_links": {"self": {"href": f"/v2/invoices/{self.invoice_number}", "method": "GET"}},
            "id": self.invoice_number,
            "submitTimeUtc": datetime.now(UTC).isoformat(),
            "status": self.status,
            "customerInformation": {"name": self.customer_name, "email": self.customer_email},
            "invoiceInformation": {
                "invoiceNumber": self.invoice_number,
                "dueDate": self.due_date.isoformat(),
                "allowPartialPayments": self.allow_partial_payments,
                "deliveryMode": "Email",
            },
            "orderInformation": {
                "amountDetails": {
                    "totalAmount": str(self.total_amount),
                    "currency": self.currency,
                    "balanceAmount": str(self.balance_amount),
                    **({"minimumPartialAmount": str(self.minimum_partial_amount)}
                       if self.minimum_partial_amount is not None else {}),
                }
            },
            "invoiceHistory": list(reversed(self.history)),  # newest first, as documented
        }  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.invoice_number,
            "status": self.status,
            "customerInformation": {"name": self.customer_name},
            "invoiceInformation": {"dueDate": self.due_date.isoformat()},
            "orderInformation": {
                "amountDetails": {"totalAmount": str(self.total_amount), "currency": self.currency}
            },
        }
