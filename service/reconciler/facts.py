"""Turning Get Invoice Details into the ledger's facts: an observation of the invoice, and
one event per ``invoiceHistory`` entry. Each has a key naming the fact itself, so asking twice
appends nothing, and a payment seen here and in a webhook counts once (by transaction id)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from service.domain.events import EventSource, InvoiceEventType, NewEvent
from service.domain.money import parse_optional_amount

E = InvoiceEventType
EVENT_TYPE_BY_HISTORY_EVENT = {
    "DRAFT": E.INVOICE_DRAFTED,
    "CREATE": E.INVOICE_CREATED,
    "UPDATE": E.INVOICE_UPDATED,
    "SEND": E.INVOICE_SENT,
    "RESEND": E.INVOICE_SENT,
    "REMINDER": E.INVOICE_REMINDER_SENT,
    "PAYMENT": E.PAYMENT_RECEIVED,
    "CANCEL": E.INVOICE_CANCELED,
    "PENDING": E.INVOICE_PAYMENT_PENDING,
    "REJECTED": E.INVOICE_PAYMENT_REJECTED,
}


class InvalidInvoiceDetails(ValueError):
    """Cybersource answered something the ledger cannot read; nothing is appended."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Amount = Annotated[Decimal | None, BeforeValidator(parse_optional_amount)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Transaction(_Model):
    transaction_id: str | None = Field(None, alias="transactionId", max_length=200)
    amount: Amount = None


class _HistoryEntry(_Model):
    event: str = Field(max_length=40)
    date: datetime
    transaction: _Transaction | None = Field(None, alias="transactionDetails")


class _Amounts(_Model):
    total: Amount = Field(None, alias="totalAmount")
    balance: Amount = Field(None, alias="balanceAmount")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class _Order(_Model):
    amount_details: _Amounts = Field(default_factory=_Amounts, alias="amountDetails")


class _Customer(_Model):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=200)


class _InvoiceInformation(_Model):
    invoice_number: str | None = Field(None, alias="invoiceNumber", max_length=200)
    due_date: str | None = Field(None, alias="dueDate", pattern=r"^\d{4}-\d{2}-\d{2}$")


class InvoiceDetails(_Model):
    id: str = Field(min_length=1, max_length=200)
    status: str = Field(max_length=20)
    submit_time: datetime | None = Field(None, alias="submitTimeUtc")
    customer: _Customer = Field(default_factory=_Customer, alias="customerInformation")
    information: _InvoiceInformation = Field(
        default_factory=_InvoiceInformation, alias="invoiceInformation"
    )
    order: _Order = Field(default_factory=_Order, alias="orderInformation")
    history: list[_HistoryEntry] = Field(default_factory=list, alias="invoiceHistory")


def read_details(document: dict[str, Any]) -> InvoiceDetails:
    try:
        return InvoiceDetails.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInvoiceDetails(f"Get Invoice Details: {where}: {message}") from None


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def reconciler_facts(details: InvoiceDetails, organization_id: str) -> list[NewEvent]:
    number = details.information.invoice_number or details.id
    amounts = details.order.amount_details
    events = [_history_event(number, entry, amounts.currency) for entry in details.history]
    snapshot = {
        "invoiceNumber": number,
        "status": details.status,
        "totalAmount": _money(amounts.total),
        "balanceAmount": _money(amounts.balance),
        "currency": amounts.currency,
        "dueDate": details.information.due_date,
        "customer": {"name": details.customer.name, "email": details.customer.email}
        if details.customer.name or details.customer.email
        else None,
    }
    # The invoice has looked like this since its latest history entry: dating the observation
    # there makes the same state, observed again, the same fact.
    dates = [_aware(entry.date) for entry in details.history]
    observed_at = max(dates) if dates else _aware(details.submit_time or datetime.now(UTC))
    digest = hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()[:32]
    events.append(
        NewEvent(
            stream_id=number,
            type=E.INVOICE_OBSERVED,
            occurred_at=observed_at,
            source=EventSource.RECONCILER,
            idempotency_key=f"cybersource:observation:{number}:{observed_at.isoformat()}:{digest}",
            data=snapshot,
        )
    )
    return events


def _history_event(number: str, entry: _HistoryEntry, currency: str | None) -> NewEvent:
    moment = _aware(entry.date)
    transaction = entry.transaction
    data: dict[str, Any] = {"invoiceNumber": number, "historyEvent": entry.event}
    if transaction is not None and (transaction.transaction_id or transaction.amount is not None):
        data["payment"] = {
            "transactionId": transaction.transaction_id,
            "amount": _money(transaction.amount),
        }
        data["currency"] = currency
    event_type = EVENT_TYPE_BY_HISTORY_EVENT.get(entry.event, "InvoiceHistoryRecorded")
    transaction_id = transaction.transaction_id if transaction else None
    return NewEvent(
        stream_id=number,
        type=event_type,
        occurred_at=moment,
        source=EventSource.RECONCILER,
        idempotency_key=":".join(
            ("cybersource:history", number, entry.event, moment.isoformat(), transaction_id or "-")
        ),
        data=data,
    )
