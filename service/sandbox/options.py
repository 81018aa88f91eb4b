"""What the sandbox shows that Cybersource may or may not show: its consumers must cope with
either."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.sandbox.invoices import TransactionDetailsShown


@dataclass(frozen=True)
class SandboxOptions:
    """``transaction_details_on_review``: PENDING and REJECTED history entries carry
    ``transactionDetails`` (Cybersource may include them; consumers must cope either way).

    ``payment_transaction_details``: what PAYMENT history entries show of their transaction
    (id and amount, the id only, or nothing), for every organization but those named in
    ``payment_transaction_details_by_organization``; a payment request's own
    ``transactionDetails`` field decides for that payment.

    ``encrypted_event_types``: the event types the products answer marks
    ``payloadEncryption``."""

    transaction_details_on_review: bool = False
    payment_transaction_details: TransactionDetailsShown = TransactionDetailsShown.AMOUNT
    payment_transaction_details_by_organization: Mapping[str, TransactionDetailsShown] = field(
        default_factory=dict
    )
    encrypted_event_types: frozenset[str] = frozenset()

    def payment_details_for(self, organization_id: str) -> TransactionDetailsShown:
        return self.payment_transaction_details_by_organization.get(
            organization_id, self.payment_transaction_details
        )
