"""The documents the API answers with, built from read rows and folded states.

One builder per document: an invoice read from the read model is first turned back into the
state the projector stored, so that it and an invoice folded as of a past moment are shown by
the same code. Amounts are decimal strings with their currency's exponent; an amount inferred from
notifications alone is named in the document's ``provisional`` list, and a payment whose money
is, says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row

from service.domain.events import RecordedEvent
from service.domain.invoice import InvoiceState, Payment
from service.domain.money import format_amount
from service.domain.provisional import provisional_payments
from service.domain.status import InvoiceStatus
from service.read import models

# The invoice state's names of its provisional amounts, as the document names them.
PROVISIONAL_NAMES: Mapping[str, models.ProvisionalAmountName] = {
    "total_amount": "totalAmount", "balance_amount": "balanceAmount", "paid_amount": "paidAmount",
}  # fmt: skip


def money(amount: Decimal | None, currency: str | None) -> str | None:
    # copy_abs: a provider's "-0.00" is zero, and a document never shows a minus sign.
    return None if amount is None else format_amount(_unsigned_zero(amount), currency)


def _unsigned_zero(amount: Decimal) -> Decimal:
    return amount.copy_abs() if amount.is_zero() else amount


def paid_money(total: Decimal | None, balance: Decimal | None, currency: str | None) -> str | None:
    """Total less balance; null when either is unknown or the balance exceeds the total (the
    facts disagree, and the reconciler treats such an invoice as doubtful): never negative."""
    if total is None or balance is None or balance > total:
        return None
    return money(total - balance, currency)


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    """What an ``invoices`` row holds: the state, without its collections, and which of its
    payments brought provisional money (``provisional_payments`` when it was projected)."""

    state: InvoiceState
    payments_provisional: tuple[bool, ...]


def stored_invoice(row: Row[Any]) -> StoredInvoice:
    """The state the projector stored in an ``invoices`` row (store/views/changes.py)."""
    state = InvoiceState(
        invoice_number=row.invoice_number,
        organization_id=row.organization_id,
        status=InvoiceStatus(row.status) if row.status else None,
        currency=row.currency,
        total_amount=row.total_amount,
        balance_amount=row.balance_amount,
        due_date=row.due_date,
        customer_name=row.customer_name,
        customer_email=row.customer_email,
        customer_erased=row.customer_erased,
        payments=tuple(
            Payment(
                transaction_id=payment["transactionId"],
                amount=Decimal(payment["amount"]) if payment["amount"] else None,
                received_at=datetime.fromisoformat(payment["date"]),
            )
            for payment in row.payments
        ),
        last_event_at=row.last_event_at,
        total_provisional=row.total_provisional,
        balance_provisional=row.balance_provisional,
    )
    # Rows projected before payments said so hold no provisional payment.
    provisional = tuple(bool(payment.get("provisional")) for payment in row.payments)
    return StoredInvoice(state, provisional)


def invoice_document(state: InvoiceState, updated_at: datetime | None) -> models.Invoice:
    """The document of a folded state (its collections say which payments are provisional)."""
    return _document(state, provisional_payments(state), updated_at)


def _document(
    state: InvoiceState, payments_provisional: Sequence[bool], updated_at: datetime | None
) -> models.Invoice:
    currency = state.currency
    customer = None
    if state.customer_erased:
        customer = models.Customer(name=None, email=None, erased=True)
    elif state.customer_name is not None or state.customer_email is not None:
        customer = models.Customer(
            name=state.customer_name, email=state.customer_email, erased=False
        )
    amounts = {
        "totalAmount": money(state.total_amount, currency),
        "balanceAmount": money(state.balance_amount, currency),
        "paidAmount": paid_money(state.total_amount, state.balance_amount, currency),
    }
    return models.Invoice(
        organizationId=state.organization_id,
        invoiceNumber=state.invoice_number,
        status=state.status,
        currency=currency,
        **amounts,
        # Only amounts the document shows: a paid amount it leaves null is not listed.
        provisional=[
            PROVISIONAL_NAMES[name]
            for name in state.provisional_amounts
            if amounts[PROVISIONAL_NAMES[name]] is not None
        ],
        dueDate=state.due_date,
        customer=customer,
        payments=[
            models.Payment(
                transactionId=payment.transaction_id,
                amount=money(payment.amount, currency),
                date=payment.received_at,
                provisional=provisional,
            )
            for payment, provisional in zip(state.payments, payments_provisional, strict=True)
        ],
        lastEventAt=state.last_event_at,
        updatedAt=updated_at,
    )


def invoice_from_row(row: Row[Any]) -> models.Invoice:
    stored = stored_invoice(row)
    return _document(stored.state, stored.payments_provisional, row.updated_at)


def invoice_at_day_end(row: Row[Any], end_of_day: datetime) -> models.Invoice:
    """An invoice listed behind an aging bucket: the row holds the status, amounts (and
    whether they were provisional) and due date of the state in force at ``end_of_day`` (and
    when it began, ``valid_from``); the payments and last fact shown are those dated before
    it, each payment as it is known now (provisional only if not confirmed since)."""
    stored = stored_invoice(row)
    state, provisional = stored.state, stored.payments_provisional
    if state.last_event_at is not None and state.last_event_at >= end_of_day:
        earlier = [
            (payment, flag)
            for payment, flag in zip(state.payments, provisional, strict=True)
            if payment.received_at < end_of_day
        ]
        state = replace(
            state,
            payments=tuple(payment for payment, _ in earlier),
            last_event_at=row.valid_from,
        )
        provisional = tuple(flag for _, flag in earlier)
    return _document(state, provisional, row.updated_at)


def event_document(event: RecordedEvent, corrected_by: int | None = None) -> models.Event:
    """``corrected_by``: the position of the correction that stands in the event's place."""
    return models.Event(
        position=event.position,
        type=event.type,
        occurredAt=event.occurred_at,
        recordedAt=event.recorded_at,
        source=event.source,
        data=dict(event.data),
        correctedBy=corrected_by,
    )


def report_items(
    rows: Sequence[Mapping[str, Any]], amount_fields: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Rows with Decimal amounts as strings in each row's currency, and unknown sums as None;
    ``amount_fields`` renames."""
    items = []
    for row in rows:
        item = {key: value for key, value in row.items() if key not in amount_fields}
        for field, name in amount_fields.items():
            item[name] = money(row[field], row.get("currency"))
        items.append(item)
    return items


def as_json(document: models.Document) -> Any:
    """The JSON value of a document: the keys a row was built with (an optional column
    absent rather than null), in the model's order."""
    return document.model_dump(mode="json", exclude_unset=True)
