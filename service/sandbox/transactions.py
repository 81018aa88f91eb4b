"""The payment transactions behind the sandbox's invoices, as the Transaction Details API
(``GET /tss/v2/transactions/{id}``) tells them: one per transaction id, kept from the moment
the customer pays (or fraud management holds the payment) and decided again by a review."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from service.sandbox.errors import TransactionNotFound
from service.sandbox.invoices import HistoryEntry, HistoryEvent, SandboxInvoice

RECONCILIATION_ID_DIGITS = 16


class TransactionDecision(StrEnum):
    ACCEPTED = "accepted"  # a history PAYMENT entry
    IN_REVIEW = "in_review"  # held by fraud management: the invoice is PENDING
    REJECTED = "rejected"  # rejected in review: the invoice went back to SENT


DECISION_BY_HISTORY_EVENT = {
    HistoryEvent.PAYMENT: TransactionDecision.ACCEPTED,
    HistoryEvent.PENDING: TransactionDecision.IN_REVIEW,
    HistoryEvent.REJECTED: TransactionDecision.REJECTED,
}


@dataclass(frozen=True)
class SandboxTransaction:
    transaction_id: str
    invoice_number: str
    amount: Decimal
    currency: str
    submitted_at: datetime  # when the customer paid: a review decides later, same transaction
    decision: TransactionDecision
    reconciliation_id: str


class Transactions:
    """One organization's payment transactions, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, SandboxTransaction] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def recorded(self, invoice: SandboxInvoice, entry: HistoryEntry) -> None:
        """Keep the transaction of a payment, a hold or a rejection; other entries have none."""
        decision = DECISION_BY_HISTORY_EVENT.get(entry.event)
        if entry.payment is None or decision is None:
            return
        transaction_id = entry.payment.transaction_id
        known = self._by_id.get(transaction_id)
        if known is not None and known.invoice_number == invoice.invoice_number:
            self._by_id[transaction_id] = SandboxTransaction(
                transaction_id, known.invoice_number, known.amount, known.currency,
                known.submitted_at, decision, known.reconciliation_id,
            )  # fmt: skip
            return
        self._by_id[transaction_id] = SandboxTransaction(
            transaction_id=transaction_id,
            invoice_number=invoice.invoice_number,
            amount=entry.payment.amount,
            currency=invoice.content.currency,
            submitted_at=entry.date,
            decision=decision,
            reconciliation_id=str(secrets.randbelow(10**RECONCILIATION_ID_DIGITS)).zfill(
                RECONCILIATION_ID_DIGITS
            ),
        )

    def get(self, transaction_id: str) -> SandboxTransaction:
        transaction = self._by_id.get(transaction_id)
        if transaction is None:
            raise TransactionNotFound(f"transaction {transaction_id[:100]} was not found")
        return transaction
