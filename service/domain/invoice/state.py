"""What the fold produces: an invoice's state at a moment, its payments and collections, and
a snapshot to continue the fold from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from service.domain.status import InvoiceStatus

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Payment:
    transaction_id: str | None
    amount: Decimal | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Collection:
    """Money collected on an invoice at a provider time, counted once."""

    collected_at: datetime
    amount: Decimal | None  # None: money arrived, but how much is not known yet
    # Inferred from notifications alone (the balances before and after it), not stated by
    # Cybersource: reported apart from confirmed money until an answer confirms or corrects it.
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceState:
    invoice_number: str
    organization_id: str = ""
    status: InvoiceStatus | None = None
    currency: str | None = None
    total_amount: Decimal | None = None
    balance_amount: Decimal | None = None
    due_date: date | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    payments: tuple[Payment, ...] = ()
    collections: tuple[Collection, ...] = ()
    last_event_at: datetime | None = None
    last_position: int = 0
    # Figures inferred from notifications alone (a total from a send's balance, a balance from
    # such a total): the best figure, labelled, until Cybersource's answer confirms it.
    total_provisional: bool = False
    balance_provisional: bool = False
    # The payer the facts last named was erased (name and email are then None).
    customer_erased: bool = False

    @property
    def provisional_amounts(self) -> tuple[str, ...]:
        """The names of the amounts that are provisional (paid_amount is when either of the
        two it is the difference of is)."""
        names = []
        if self.total_provisional and self.total_amount is not None:
            names.append("total_amount")
        if self.balance_provisional and self.balance_amount is not None:
            names.append("balance_amount")
        if names and self.paid_amount is not None:
            names.append("paid_amount")
        return tuple(names)

    @property
    def paid_amount(self) -> Decimal | None:
        if self.total_amount is None or self.balance_amount is None:
            return None
        return self.total_amount - self.balance_amount

    @property
    def collected_amount(self) -> Decimal | None:
        """The sum of the collections, or None while one of them is of unknown amount."""
        if any(collection.amount is None for collection in self.collections):
            return None
        return sum((c.amount for c in self.collections if c.amount is not None), ZERO)


@dataclass(frozen=True, slots=True)
class FoldSnapshot:
    """Where an invoice's fold stands after the facts folded so far: enough to fold later
    notifications onto it without its earlier facts.

    The running figures are ``last_state``'s (every step ends with a snapshot of them);
    what the states do not show is kept beside it.
    """

    last_state: InvoiceState
    last_fact: tuple[datetime, int]  # the latest fact folded, in the fold's order
    highest_position: int  # the highest store position among the facts folded
    observed: bool
    matched_payments: frozenset[int]
