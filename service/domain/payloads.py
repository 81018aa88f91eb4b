"""What each recorded fact carries, typed, and the one place where stored JSON becomes a typed
payload and back.

Four kinds of fact:
- ``NotificationReceived``: a webhook notification (the seven ``invoicing.customer.invoice.*``
  types); provisional, it shows a change at once. ``CorrectionRecorded`` is one an operator
  recorded: the version of a notification that conflicted with the recorded one.
- ``InvoiceObserved``: Get Invoice Details, the provider's truth as of the moment it answered.
- ``HistoryEntryRecorded``: one ``invoiceHistory`` entry of such an answer.
- ``TransactionObserved``: the Transaction Details API's answer for one payment transaction,
  the amount a history ``PAYMENT`` entry without ``transactionDetails.amount`` collected.

And one that is not about the invoice: ``PersonalDataErased``, an operator's erasure of a
payer's personal data; the fold reads past it. A fact whose payer was erased states its
customer as erased (``customer_erased``) with no name or email.

Stored data is JSON with camelCase names and amounts as decimal strings. Version 1 events
(before organizations were recorded and history entries were told apart) are upcast here, when
read, and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from service.domain.events import InvoiceEventType, RecordedEvent
from service.domain.identity import organization_named_by
from service.domain.money import InvalidAmount, parse_amount


@dataclass(frozen=True, slots=True)
class StatedFields:
    """What a fact says about the invoice itself; None where it says nothing."""

    currency: str | None = None
    total_amount: Decimal | None = None
    balance_amount: Decimal | None = None
    due_date: date | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    # The payer this fact named was erased: its name and email are gone for good.
    customer_erased: bool = False


@dataclass(frozen=True, slots=True)
class PaymentReported:
    transaction_id: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class NotificationIdentity:
    notification_id: str | None = None
    webhook_id: str | None = None
    event_type: str | None = None
    event_date: str | None = None
    product_id: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    organization_id: str | None
    invoice_number: str
    stated: StatedFields
    payment: PaymentReported | None = None
    notification: NotificationIdentity = NotificationIdentity()


@dataclass(frozen=True, slots=True)
class CorrectionRecorded(NotificationReceived):
    """An operator's correction: the conflicting version of a notification, recorded as a new
    fact beside the first (never an edit). The fold reads it in place of the event it
    corrects (``corrects_position``), at that event's provider time."""

    reason: str = ""
    delivery_id: int | None = None  # the conflicting delivery whose version this records
    corrects_position: int | None = None  # the recorded event it stands against
    recorded_by: str | None = None

    def corrected_fact(self) -> NotificationReceived:
        """The notification as the correction says it should have been received."""
        return _as_notification(self)


@dataclass(frozen=True, slots=True)
class InvoiceObserved:
    organization_id: str | None
    invoice_number: str
    status: str | None
    stated: StatedFields


@dataclass(frozen=True, slots=True)
class HistoryEntryRecorded:
    """``occurrence`` tells apart identical entries (same event, date and transaction): the
    n-th such entry in the history, from the oldest. Unknown (None) for version 1 facts."""

    organization_id: str | None
    invoice_number: str
    history_event: str
    transaction: PaymentReported | None = None
    currency: str | None = None
    occurrence: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionObserved:
    """``GET /tss/v2/transactions/{id}``: what one payment transaction collected."""

    organization_id: str | None
    invoice_number: str
    transaction_id: str
    amount: Decimal | None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class PersonalDataErased:
    """An operator erased the personal data of the payer ``payer`` names (a keyed hash, never
    the email or name): the facts of this invoice that named them read as erased from now on."""

    organization_id: str | None
    invoice_number: str
    payer: str
    reason: str
    recorded_by: str | None = None


Payload = (
    NotificationReceived
    | InvoiceObserved
    | HistoryEntryRecorded
    | TransactionObserved
    | PersonalDataErased
)

E = InvoiceEventType
HISTORY_EVENT_TYPES = frozenset(
    {
        E.INVOICE_DRAFTED,
        E.INVOICE_CREATED,
        E.INVOICE_UPDATED,
        E.PAYMENT_RECEIVED,
        E.INVOICE_PAYMENT_PENDING,
        E.INVOICE_PAYMENT_REJECTED,
        "InvoiceHistoryRecorded",
    }
)
# The types ``decode`` tells apart, read from their enum once (on Python 3.11 a member read
# from its class costs ten times a module's name, and ``decode`` runs for every fact folded).
_OBSERVED, _ERASED, _TRANSACTION = (
    E.INVOICE_OBSERVED, E.PERSONAL_DATA_ERASED, E.TRANSACTION_OBSERVED,
)  # fmt: skip


def encode(payload: Payload) -> dict[str, Any]:
    """The stored JSON of a payload (the current schema version)."""
    match payload:
        case CorrectionRecorded():
            return {
                **encode(_as_notification(payload)),
                "correction": {
                    "reason": payload.reason,
                    "deliveryId": payload.delivery_id,
                    "correctsPosition": payload.corrects_position,
                    "recordedBy": payload.recorded_by,
                },
            }
        case NotificationReceived():
            return {
                "organizationId": payload.organization_id,
                "invoiceNumber": payload.invoice_number,
                **_encode_stated(payload.stated),
                "payment": _encode_payment(payload.payment),
                "notification": {
                    "id": payload.notification.notification_id,
                    "webhookId": payload.notification.webhook_id,
                    "eventType": payload.notification.event_type,
                    "eventDate": payload.notification.event_date,
                    "organizationId": payload.organization_id,
                    "productId": payload.notification.product_id,
                },
            }
        case InvoiceObserved():
            return {
                "organizationId": payload.organization_id,
                "invoiceNumber": payload.invoice_number,
                "status": payload.status,
                **_encode_stated(payload.stated),
            }
        case TransactionObserved():
            return {
                "organizationId": payload.organization_id,
                "invoiceNumber": payload.invoice_number,
                "transactionId": payload.transaction_id,
                "amount": _money(payload.amount),
                "currency": payload.currency,
            }
        case PersonalDataErased():
            return {
                "organizationId": payload.organization_id,
                "invoiceNumber": payload.invoice_number,
                "erasure": {
                    "payer": payload.payer,
                    "reason": payload.reason,
                    "recordedBy": payload.recorded_by,
                },
            }
        case HistoryEntryRecorded():
            return {
                "organizationId": payload.organization_id,
                "invoiceNumber": payload.invoice_number,
                "historyEvent": payload.history_event,
                "occurrence": payload.occurrence,
                "payment": _encode_payment(payload.transaction),
                "currency": payload.currency,
            }
    raise TypeError(f"not a payload: {type(payload).__name__}")  # pragma: no cover


def decode(event: RecordedEvent) -> Payload:
    """The typed payload of a recorded event, whatever schema version it was written in."""
    data = event.data
    if event.schema_version < 2:
        data = _upcast_from_version_1(event.type, data)
    number = str(data.get("invoiceNumber") or event.stream_id)
    organization = data.get("organizationId") or None
    if event.type == _OBSERVED:
        status = data.get("status")
        return InvoiceObserved(
            organization, number, status if isinstance(status, str) else None, _stated(data)
        )
    if event.type == _ERASED:
        erasure = data.get("erasure") or {}
        return PersonalDataErased(
            organization,
            number,
            str(erasure.get("payer") or ""),
            str(erasure.get("reason") or ""),
            erasure.get("recordedBy"),
        )
    if event.type == _TRANSACTION:
        return TransactionObserved(
            organization,
            number,
            str(data.get("transactionId") or ""),
            _amount(data.get("amount")),
            data.get("currency"),
        )
    if event.type in HISTORY_EVENT_TYPES or "historyEvent" in data:
        # A history SEND, RESEND, REMINDER or CANCEL shares its event type with a webhook's;
        # "historyEvent" tells them apart.
        return HistoryEntryRecorded(
            organization,
            number,
            str(data.get("historyEvent") or ""),
            _payment(data.get("payment")),
            data.get("currency"),
            data.get("occurrence"),
        )
    notification = data.get("notification") or {}
    received = NotificationReceived(
        organization,
        number,
        _stated(data),
        _payment(data.get("payment")),
        NotificationIdentity(
            notification.get("id"),
            notification.get("webhookId"),
            notification.get("eventType"),
            notification.get("eventDate"),
            notification.get("productId"),
        ),
    )
    correction = data.get("correction")
    if correction is not None and isinstance(correction, Mapping):  # most facts: no ABC check
        return CorrectionRecorded(
            received.organization_id,
            received.invoice_number,
            received.stated,
            received.payment,
            received.notification,
            reason=str(correction.get("reason") or ""),
            delivery_id=correction.get("deliveryId"),
            corrects_position=correction.get("correctsPosition"),
            recorded_by=correction.get("recordedBy"),
        )
    return received


def _as_notification(correction: CorrectionRecorded) -> NotificationReceived:
    return NotificationReceived(
        correction.organization_id,
        correction.invoice_number,
        correction.stated,
        correction.payment,
        correction.notification,
    )


def _upcast_from_version_1(event_type: str, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Version 1 named the organization only inside a webhook's ``notification`` and did not
    count identical history entries (each was the first of its kind)."""
    upgraded = {**data, "organizationId": organization_named_by(data)}
    if "historyEvent" in data:
        upgraded["occurrence"] = None
    return upgraded


# How a fact states a customer whose personal data was erased, in stored and read JSON alike.
ERASED_CUSTOMER: Mapping[str, Any] = {"name": None, "email": None, "erased": True}


def _encode_stated(stated: StatedFields) -> dict[str, Any]:
    customer: dict[str, Any] | None = None
    if stated.customer_erased:
        customer = dict(ERASED_CUSTOMER)
    elif stated.customer_name is not None or stated.customer_email is not None:
        customer = {"name": stated.customer_name, "email": stated.customer_email}
    return {
        "balanceAmount": _money(stated.balance_amount),
        "totalAmount": _money(stated.total_amount),
        "currency": stated.currency,
        "dueDate": stated.due_date.isoformat() if stated.due_date else None,
        "customer": customer,
    }


def _encode_payment(payment: PaymentReported | None) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {"transactionId": payment.transaction_id, "amount": _money(payment.amount)}


def _stated(data: Mapping[str, Any]) -> StatedFields:
    customer = data.get("customer") or {}
    due = data.get("dueDate")
    return StatedFields(
        currency=data.get("currency"),
        total_amount=_amount(data.get("totalAmount")),
        balance_amount=_amount(data.get("balanceAmount")),
        due_date=date.fromisoformat(due) if due else None,
        customer_name=customer.get("name"),
        customer_email=customer.get("email"),
        customer_erased=customer.get("erased") is True,
    )


def _payment(raw: Any) -> PaymentReported | None:
    if not raw:
        return None
    return PaymentReported(raw.get("transactionId"), _amount(raw.get("amount")))


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


# The shape the codec writes amounts in (``_money``): a stored amount of this shape is read
# without the full parser's checks, which only ever refuse other shapes. It runs for every
# amount of every fact a projector folds.
_STORED_AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,6})?")


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    if type(value) is str and _STORED_AMOUNT.fullmatch(value):
        return Decimal(value)
    try:
        return parse_amount(value)
    except InvalidAmount:
        return None  # a stored fact was validated on the way in; never guess at a bad one
