"""An invoice's state as a pure function of its events.

Events are applied in provider time, ties broken by store position, so any delivery order
gives the same state. Every field the events do not establish stays unknown (None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from service.domain.events import InvoiceEventType, RecordedEvent
from service.domain.money import InvalidAmount, parse_amount


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
# Facts that mean money arrived; their balance decrease is what was collected.
PAYMENT_EVENT_TYPES = frozenset(
    {
        InvoiceEventType.INVOICE_PAID,
        InvoiceEventType.INVOICE_PARTIALLY_PAID,
        InvoiceEventType.PAYMENT_RECEIVED,
    }
)


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
    # The balance implied by the collections counted so far: lets a payment seen without a
    # balance and a later balance report of the same money count once, not twice.
    accounted_balance: Decimal | None = field(default=None, repr=False)

    @property
    def paid_amount(self) -> Decimal | None:
        if self.total_amount is None or self.balance_amount is None:
            return None
        return self.total_amount - self.balance_amount


def fold(invoice_number: str, events: Iterable[RecordedEvent]) -> InvoiceState:
    state = InvoiceState(invoice_number)
    for event in sorted(events, key=lambda e: (e.occurred_at, e.position)):
        state = apply(state, event)
    return state


def state_history(invoice_number: str, events: Iterable[RecordedEvent]) -> list[InvoiceState]:
    """Every state the invoice was in, one per distinct provider time, oldest first."""
    history: list[InvoiceState] = []
    state = InvoiceState(invoice_number)
    for event in sorted(events, key=lambda e: (e.occurred_at, e.position)):
        state = apply(state, event)
        if history and history[-1].last_event_at == state.last_event_at:
            history[-1] = state  # several facts at one instant: only the last state was seen
        else:
            history.append(state)
    return history


def fold_as_of(
    invoice_number: str, events: Iterable[RecordedEvent], moment: datetime
) -> InvoiceState:
    """The state as it stood at provider time ``moment`` (events at that instant included)."""
    return fold(invoice_number, (e for e in events if e.occurred_at <= moment))


def apply(state: InvoiceState, event: RecordedEvent) -> InvoiceState:
    changes = _fact_changes(event.data)
    total = changes.get("total_amount", state.total_amount)
    changes.update(_money_changes(state, event, total))
    return replace(
        state,
        status=next_status(state, event.type, event.data),
        last_event_at=event.occurred_at,
        last_position=max(state.last_position, event.position),
        **changes,
    )


def next_status(
    state: InvoiceState, event_type: str, data: Mapping[str, Any]
) -> InvoiceStatus | None:
    current = state.status
    match event_type:
        case InvoiceEventType.INVOICE_OBSERVED:
            observed = data.get("status")
            if isinstance(observed, str) and observed in InvoiceStatus.__members__:
                return InvoiceStatus(observed)
            return current
        case InvoiceEventType.INVOICE_DRAFTED:
            return InvoiceStatus.DRAFT if current is None else current
        case InvoiceEventType.INVOICE_CREATED:
            return InvoiceStatus.CREATED if current in (None, InvoiceStatus.DRAFT) else current
        case InvoiceEventType.INVOICE_SENT:
            # Sending never reopens a settled invoice and a resend keeps PARTIAL/PENDING.
            reopenable = (None, InvoiceStatus.DRAFT, InvoiceStatus.CREATED)
            return InvoiceStatus.SENT if current in reopenable else current
        case InvoiceEventType.INVOICE_PARTIAL_RESENT | InvoiceEventType.INVOICE_PARTIALLY_PAID:
            if current in FINAL_STATUSES:
                return current
            return InvoiceStatus.PARTIAL
        case InvoiceEventType.INVOICE_PAID:
            return InvoiceStatus.PAID
        case InvoiceEventType.INVOICE_CANCELED:
            return current if current is InvoiceStatus.PAID else InvoiceStatus.CANCELED
        case InvoiceEventType.INVOICE_PAYMENT_PENDING:
            return current if current in FINAL_STATUSES else InvoiceStatus.PENDING
        case InvoiceEventType.INVOICE_PAYMENT_REJECTED:
            if current is not InvoiceStatus.PENDING:
                return current
            return InvoiceStatus.PARTIAL if state.payments else InvoiceStatus.SENT
        case _:
            return current  # reminders, updates: no change of status


def _fact_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if (currency := data.get("currency")) is not None:
        changes["currency"] = currency
    if (total := _amount(data.get("totalAmount"))) is not None:
        changes["total_amount"] = total
    if (due := data.get("dueDate")) is not None:
        changes["due_date"] = date.fromisoformat(due)
    customer = data.get("customer") or {}
    if customer.get("name") is not None:
        changes["customer_name"] = customer["name"]
    if customer.get("email") is not None:
        changes["customer_email"] = customer["email"]
    return changes


def _money_changes(
    state: InvoiceState, event: RecordedEvent, total: Decimal | None
) -> dict[str, Any]:
    balance = _amount(event.data.get("balanceAmount"))
    payment = _payment(event)
    already_seen = (
        payment is not None
        and payment.transaction_id is not None
        and any(p.transaction_id == payment.transaction_id for p in state.payments)
    )
    payments = state.payments
    if payment is not None and not already_seen:
        payments = (*payments, payment)

    collected: Decimal | None = None
    accounted = state.accounted_balance
    if event.type in PAYMENT_EVENT_TYPES:
        before = accounted if accounted is not None else total
        if balance is not None and before is not None:
            collected = before - balance
        elif payment is not None and payment.amount is not None and not already_seen:
            # Never more than was still owed: the same money may already have been counted
            # from a balance report that named no transaction.
            collected = payment.amount if before is None else min(payment.amount, before)
            if before is not None:
                accounted = before - collected
    if balance is not None:
        accounted = balance

    collections = state.collections
    if collected is not None and collected > 0:
        collections = (*collections, Collection(event.occurred_at, collected))
    return {
        "balance_amount": balance if balance is not None else state.balance_amount,
        "payments": payments,
        "collections": collections,
        "accounted_balance": accounted,
    }


def _payment(event: RecordedEvent) -> Payment | None:
    raw = event.data.get("payment")
    if not raw:
        return None
    return Payment(raw.get("transactionId"), _amount(raw.get("amount")), event.occurred_at)


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_amount(value)
    except InvalidAmount:
        return None  # a stored fact was validated on the way in; never guess at a bad one
