"""Turning Get Invoice Details into the ledger's facts: one event per ``invoiceHistory``
entry, each with a key naming the entry (asking twice appends nothing), and an observation
of the invoice as Cybersource answered, the truth as of that moment. And turning a Transaction
Details answer into the amount of the payment transaction it is about, once per transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from service.cybersource.envelope import is_storable
from service.cybersource.transaction_details import TransactionDetails
from service.domain.events import EventSource, InvoiceEventType, NewEvent, RecordedEvent
from service.domain.invoice import InvoiceState
from service.domain.money import parse_optional_amount
from service.domain.payloads import (
    HistoryEntryRecorded,
    InvoiceObserved,
    PaymentReported,
    StatedFields,
    TransactionObserved,
    decode,
    encode,
)

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

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # PostgreSQL text and JSONB hold neither, so its append would refuse the facts.
        if isinstance(value, str) and not is_storable(value):
            raise ValueError("holds a NUL character or a lone surrogate")
        return value


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


def observed_invoice(details: InvoiceDetails, organization_id: str) -> InvoiceObserved:
    amounts = details.order.amount_details
    due = details.information.due_date
    return InvoiceObserved(
        organization_id=organization_id,
        invoice_number=details.information.invoice_number or details.id,
        status=details.status,
        stated=StatedFields(
            currency=amounts.currency,
            total_amount=amounts.total,
            balance_amount=amounts.balance,
            due_date=date.fromisoformat(due) if due else None,
            customer_name=details.customer.name,
            customer_email=details.customer.email,
        ),
    )


def reconciler_facts(
    details: InvoiceDetails, organization_id: str, *, called_at: datetime | None = None
) -> ReconcilerFacts:
    """The history entries, each a fact with a key naming the entry, and the observation.

    The observation is the truth as of the moment Cybersource produced it (``submitTimeUtc``,
    else the time of the call), never earlier than the history it shows; its key names that
    moment, so each answer is a fact of its own. Whether it is worth recording is the
    caller's decision (``observation_is_news``).
    """
    observed = observed_invoice(details, organization_id)
    number = observed.invoice_number
    oldest_first = sorted(details.history, key=lambda entry: _aware(entry.date))
    occurrences: dict[tuple[str, datetime, str | None], int] = {}
    history = []
    for entry in oldest_first:
        transaction_id = entry.transaction.transaction_id if entry.transaction else None
        identity = (entry.event, _aware(entry.date), transaction_id)
        occurrence = occurrences.get(identity, 0)
        occurrences[identity] = occurrence + 1
        history.append(
            _history_event(organization_id, number, entry, observed.stated.currency, occurrence)
        )
    produced_at = _aware(details.submit_time or called_at or datetime.now(UTC))
    observed_at = max([produced_at, *(_aware(entry.date) for entry in details.history)])
    observation = NewEvent(
        stream_id=number,
        type=E.INVOICE_OBSERVED,
        occurred_at=observed_at,
        source=EventSource.RECONCILER,
        idempotency_key=":".join(
            ("cybersource:observation", organization_id, number, observed_at.isoformat())
        ),
        data=encode(observed),
    )
    return ReconcilerFacts(observed, history, observation)


@dataclass(frozen=True)
class ReconcilerFacts:
    observed: InvoiceObserved
    history: list[NewEvent]
    observation: NewEvent

    @property
    def all(self) -> list[NewEvent]:
        return [*self.history, self.observation]


def transactions_without_amount(details: InvoiceDetails) -> list[str]:
    """The transaction ids of the PAYMENT entries that name a transaction but no amount,
    oldest entry first, each once."""
    oldest_first = sorted(details.history, key=lambda entry: _aware(entry.date))
    transaction_ids: dict[str, None] = {}
    for entry in oldest_first:
        transaction = entry.transaction
        if (
            entry.event == "PAYMENT"
            and transaction is not None
            and transaction.transaction_id
            and transaction.amount is None
        ):
            transaction_ids[transaction.transaction_id] = None
    return list(transaction_ids)


def unattributed_transactions(ledger: InvoiceState) -> set[str]:
    """The transactions of the ledger's payments whose amount it cannot attribute."""
    return {
        payment.transaction_id
        for payment in ledger.payments
        if payment.transaction_id and payment.amount is None
    }


def observed_transactions(events: Iterable[RecordedEvent]) -> set[str]:
    """The transactions the Transaction Details API has already been asked about."""
    observed = set()
    for event in events:
        if event.type == E.TRANSACTION_OBSERVED:
            payload = decode(event)
            assert isinstance(payload, TransactionObserved)
            observed.add(payload.transaction_id)
    return observed


def transaction_observation(
    answer: TransactionDetails,
    organization_id: str,
    invoice_number: str,
    *,
    invoice_currency: str | None,
    called_at: datetime,
) -> NewEvent:
    """What one payment transaction collected, dated when it was submitted (else when it was
    asked about); its key names the transaction, so asking again appends nothing. The amount
    carries the answer's currency, else the invoice's."""
    submitted_at = answer.submitted_at
    fact = TransactionObserved(
        organization_id=organization_id,
        invoice_number=invoice_number,
        transaction_id=answer.id,
        amount=answer.amount,
        currency=answer.currency or invoice_currency,
    )
    return NewEvent(
        stream_id=invoice_number,
        type=E.TRANSACTION_OBSERVED,
        occurred_at=submitted_at or _aware(called_at),
        source=EventSource.RECONCILER,
        idempotency_key=f"cybersource:transaction:{organization_id}:{answer.id}",
        data=encode(fact),
        # A time that is only when the ledger asked changes with every asking.
        time_is_content=submitted_at is not None,
    )


def observation_is_news(ledger: InvoiceState, observed: InvoiceObserved) -> bool:
    """Whether the ledger, as it stands, differs from what Cybersource answered: then the
    answer is recorded, superseding whatever notification left the ledger otherwise."""
    stated = observed.stated
    # A name or address Cybersource no longer shows was removed by an update: that is news too.
    # Not a payer the ledger erased on purpose: Cybersource still holding them is no news (a
    # fact recorded for another reason names them again, under a new data key).
    renamed = not ledger.customer_erased and (stated.customer_name, stated.customer_email) != (
        ledger.customer_name,
        ledger.customer_email,
    )
    return renamed or (ledger.status.value if ledger.status else None, ledger.total_amount,
            ledger.balance_amount, ledger.currency, ledger.due_date) != (
        observed.status, stated.total_amount, stated.balance_amount, stated.currency,
        stated.due_date,
    )  # fmt: skip


def _history_event(
    organization_id: str,
    number: str,
    entry: _HistoryEntry,
    currency: str | None,
    occurrence: int,
) -> NewEvent:
    moment = _aware(entry.date)
    transaction = entry.transaction
    reported = None
    if transaction is not None and (transaction.transaction_id or transaction.amount is not None):
        reported = PaymentReported(transaction.transaction_id, transaction.amount)
    fact = HistoryEntryRecorded(
        organization_id=organization_id,
        invoice_number=number,
        history_event=entry.event,
        transaction=reported,
        currency=currency if reported else None,
        occurrence=occurrence,
    )
    transaction_id = transaction.transaction_id if transaction else None
    return NewEvent(
        stream_id=number,
        type=EVENT_TYPE_BY_HISTORY_EVENT.get(entry.event, "InvoiceHistoryRecorded"),
        occurred_at=moment,
        source=EventSource.RECONCILER,
        idempotency_key=":".join(
            (
                "cybersource:history",
                organization_id,
                number,
                entry.event,
                moment.isoformat(),
                transaction_id or "-",
                str(occurrence),
            )
        ),
        data=encode(fact),
    )
