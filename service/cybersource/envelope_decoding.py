"""A delivery's envelope in one decode: msgspec reads the body straight into the envelope's
fields, numbers with a fraction or an exponent as exact Decimals, every other key passed over;
its invoice items are read by the same validators without building the model.

Each reads as the models do (``read_envelope(parse_body(body))``, ``read_invoice_data``) and
leaves to them every body or item it cannot read plainly (anything their validators or bounds
would refuse), so the answers, the facts and the refusals' messages are the models':
``tests/unit/test_envelope_decoding.py`` holds both readings equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec

from service.cybersource.envelope import (
    _DATE,
    IDENTIFIER_LENGTH_MAX,
    Envelope,
    InvoiceData,
    _amount,
    _currency,
    _optional_text,
    _retry_number,
    parse_body,
    read_envelope,
    read_invoice_data,
)


class _EnvelopeFields(msgspec.Struct, frozen=True, gc=False):
    """The envelope's fields as the JSON gives them (UNSET where absent), every other key of
    the body passed over. Numbers with a fraction or an exponent arrive as exact Decimals."""

    notification_id: Any = msgspec.field(default=msgspec.UNSET, name="notificationId")
    event_type: Any = msgspec.field(default=msgspec.UNSET, name="eventType")
    event_date: Any = msgspec.field(default=msgspec.UNSET, name="eventDate")
    webhook_id: Any = msgspec.field(default=msgspec.UNSET, name="webhookId")
    product_id: Any = msgspec.field(default=msgspec.UNSET, name="productId")
    organization_id: Any = msgspec.field(default=msgspec.UNSET, name="organizationId")
    organization_id_upper: Any = msgspec.field(default=msgspec.UNSET, name="organizationID")
    retry_number: Any = msgspec.field(default=msgspec.UNSET, name="retryNumber")
    payload: Any = msgspec.field(default=msgspec.UNSET, name="payload")
    payloads: Any = msgspec.field(default=msgspec.UNSET, name="payloads")


_ENVELOPE_DECODER = msgspec.json.Decoder(_EnvelopeFields, float_hook=Decimal)
# Where msgspec and json.loads could disagree, json.loads (parse_body) reads: it refuses an
# integer of over 4,300 digits and nesting past the recursion limit, which msgspec accepts.
# A body below both bounds cannot hold either.
_DECODED_BODY_BYTES_MAX = 4096
_DECODED_BRACKETS_MAX = 64


@dataclass(frozen=True, slots=True)
class PlainEnvelope:
    """The fields of an ``Envelope`` read by ``decode_envelope`` (a model built without
    validation costs several times the decode itself)."""

    notification_id: str | None
    event_type: str | None
    event_date: str | None
    webhook_id: str | None
    product_id: str | None
    organization_id: str | None
    retry_number: int | None
    payload: list[Any] | dict[str, Any] | None


def decode_envelope(raw_body: bytes) -> Envelope | PlainEnvelope:
    """``read_envelope(parse_body(raw_body))`` in one decode: the same fields, and for any
    body it does not read plainly, that very reading (with its refusal and message)."""
    envelope = _plain_envelope(raw_body)
    return envelope if envelope is not None else read_envelope(parse_body(raw_body))


def _plain_envelope(raw_body: bytes) -> PlainEnvelope | None:
    if (
        len(raw_body) > _DECODED_BODY_BYTES_MAX
        or raw_body.count(b"{") + raw_body.count(b"[") > _DECODED_BRACKETS_MAX
    ):
        return None
    try:
        fields = _ENVELOPE_DECODER.decode(raw_body)
        # The envelope model's aliases take the first key present, even when it is null.
        organization = fields.organization_id
        if organization is msgspec.UNSET:
            organization = fields.organization_id_upper
        payload = fields.payload if fields.payload is not msgspec.UNSET else fields.payloads
        payload = None if payload is msgspec.UNSET else payload
        if not (payload is None or isinstance(payload, list | dict)):
            return None
        retry_number = None if fields.retry_number is msgspec.UNSET else fields.retry_number
        return PlainEnvelope(
            _plain_text(fields.notification_id),
            _plain_text(fields.event_type),
            _plain_text(fields.event_date),
            _plain_text(fields.webhook_id),
            _plain_text(fields.product_id),
            _plain_text(organization),
            _retry_number(retry_number),
            payload,
        )
    except (msgspec.DecodeError, ValueError):
        return None  # the model's reading decides, and words the refusal


def _plain_text(value: Any) -> str | None:
    """What the model's ``Text`` makes of a value it accepts; ValueError for any other."""
    text = None if value is msgspec.UNSET else _optional_text(value)
    if text is None or (isinstance(text, str) and len(text) <= IDENTIFIER_LENGTH_MAX):
        return text
    raise ValueError("not a text the envelope accepts")


@dataclass(frozen=True, slots=True)
class PlainInvoiceData:
    """The fields of an ``InvoiceData`` read by ``decode_invoice_data``."""

    invoice_number: str
    balance_amount: Decimal | None
    total_amount: Decimal | None
    currency: str | None
    due_date: date | None
    payer_name: str | None
    email_to: str | None
    transaction_id: str | None
    payment_amount: Decimal | None
    event_type: str | None
    organization_id: str | None


def decode_invoice_data(item: Mapping[str, Any], index: int) -> InvoiceData | PlainInvoiceData:
    """``read_invoice_data(item, index)`` without the model for an item it reads plainly: the
    same fields, and for any other item that very reading (with its refusal and message)."""
    try:
        return _plain_invoice_data(item)
    except ValueError:
        return read_invoice_data(item, index)


def _plain_invoice_data(item: Mapping[str, Any]) -> PlainInvoiceData:
    invoice_number = _plain_text(item.get("invoiceNumber", msgspec.UNSET))
    if not invoice_number:
        raise ValueError("no invoice number")
    currency = _currency(item.get("currency"))
    if not (currency is None or isinstance(currency, str)):
        raise ValueError("not a currency the model accepts")
    return PlainInvoiceData(
        invoice_number=invoice_number,
        balance_amount=_plain_amount(_first(item, "balanceAmount", "invoiceBalance")),
        total_amount=_plain_amount(item.get("totalAmount")),
        currency=currency,
        due_date=_plain_date(item.get("dueDate")),
        payer_name=_plain_text(item.get("payerName", msgspec.UNSET)),
        email_to=_plain_text(item.get("emailTo", msgspec.UNSET)),
        transaction_id=_plain_text(item.get("transactionId", msgspec.UNSET)),
        payment_amount=_plain_amount(_first(item, "paymentAmount", "paidAmount", "amount")),
        event_type=_plain_text(item.get("eventType", msgspec.UNSET)),
        organization_id=_plain_text(_first(item, "organizationId", "organizationID")),
    )


def _first(item: Mapping[str, Any], *names: str) -> Any:
    """As the model's alias choices: the first name present, even when its value is null."""
    for name in names:
        if name in item:
            return item[name]
    return None


def _plain_amount(value: Any) -> Decimal | None:
    amount = _amount(value)
    if amount is None or isinstance(amount, Decimal):
        return amount
    raise ValueError("not an amount the model accepts")


def _plain_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        raise ValueError("not a date the model accepts")
    return date.fromisoformat(value.strip())
