"""Reading a Cybersource notification, whichever documented envelope variant it arrives in.

Variants seen in Cybersource's documentation and official code:
``payload`` or ``payloads``, each a list or an object; ``organizationId`` or
``organizationID``; ``retryNumber`` as a string or an int; items with their fields under
``data`` or directly; identifiers missing from the body but present in ``V-C-*`` headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from service.domain.money import InvalidCurrency, parse_currency, parse_optional_amount

IDENTIFIER_LENGTH_MAX = 200


class UnusableBody(ValueError):
    """A correctly signed body the ledger cannot turn into a fact; it is kept as a dead letter."""


@dataclass(frozen=True, slots=True)
class DeliveryHeaders:
    """The ``V-C-*`` headers, used where the body lacks a field."""

    event_type: str | None = None
    webhook_id: str | None = None
    organization_id: str | None = None
    product_name: str | None = None
    retry_count: int | None = None
    trace_id: str | None = None

    @classmethod
    def from_mapping(cls, headers: Mapping[str, str]) -> DeliveryHeaders:
        def text(name: str) -> str | None:
            value = headers.get(name)
            return value.strip()[:IDENTIFIER_LENGTH_MAX] or None if value else None

        retry = text("v-c-retry-count")
        return cls(
            event_type=text("v-c-event-type"),
            webhook_id=text("v-c-webhook-id"),
            organization_id=text("v-c-organization-id"),
            product_name=text("v-c-product-name"),
            retry_count=_retry_number(retry),
            trace_id=text("v-c-transaction-trace-id"),
        )


def _optional_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        if "\x00" in value:
            # PostgreSQL text and JSONB cannot hold NUL; such a body stays a dead letter.
            raise ValueError("contains a NUL character")
        return value.strip() or None
    return value


def _currency(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return parse_currency(value)
    except InvalidCurrency as error:
        raise ValueError(str(error)) from error


RETRY_NUMBER_MAX = 1_000_000


def _retry_number(value: Any) -> int | None:
    """Informational only: an unreadable or absurd retry number is dropped, not fatal."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= RETRY_NUMBER_MAX:
        return value
    return None


# The length bound applies to the text only: None (absent or blank) is always acceptable.
BoundedText = Annotated[str, StringConstraints(max_length=IDENTIFIER_LENGTH_MAX)]
Text = Annotated[BoundedText | None, BeforeValidator(_optional_text)]
Amount = Annotated[Decimal | None, BeforeValidator(parse_optional_amount)]
Currency = Annotated[str | None, BeforeValidator(_currency)]


class _EnvelopeModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    notification_id: Text = Field(None, alias="notificationId")
    event_type: Text = Field(None, alias="eventType")
    event_date: Text = Field(None, alias="eventDate")
    webhook_id: Text = Field(None, alias="webhookId")
    product_id: Text = Field(None, alias="productId")
    organization_id: Text = Field(
        None, validation_alias=AliasChoices("organizationId", "organizationID")
    )
    retry_number: Annotated[int | None, BeforeValidator(_retry_number)] = Field(
        None, alias="retryNumber"
    )
    payload: list[Any] | dict[str, Any] | None = Field(
        None, validation_alias=AliasChoices("payload", "payloads")
    )


class InvoiceData(BaseModel):
    """The invoice fields of one payload item. Amounts arrive as strings or numbers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    invoice_number: Annotated[str, BeforeValidator(_optional_text)] = Field(
        alias="invoiceNumber", min_length=1, max_length=IDENTIFIER_LENGTH_MAX
    )
    balance_amount: Amount = Field(
        None, validation_alias=AliasChoices("balanceAmount", "invoiceBalance")
    )
    total_amount: Amount = Field(None, alias="totalAmount")
    currency: Currency = None
    due_date: date | None = Field(None, alias="dueDate")
    payer_name: Text = Field(None, alias="payerName")
    email_to: Text = Field(None, alias="emailTo")
    transaction_id: Text = Field(None, alias="transactionId")
    payment_amount: Amount = Field(
        None, validation_alias=AliasChoices("paymentAmount", "paidAmount", "amount")
    )
    event_type: Text = Field(None, alias="eventType")
    organization_id: Text = Field(
        None, validation_alias=AliasChoices("organizationId", "organizationID")
    )

    @field_validator("due_date", mode="before")
    @classmethod
    def _blank_due_date_is_unknown(cls, value: Any) -> Any:
        return None if value == "" else value


@dataclass(frozen=True, slots=True)
class Notification:
    """One delivery's notification, with header fallbacks applied."""

    notification_id: str | None
    event_type: str | None
    event_date: datetime | None
    event_date_text: str | None
    webhook_id: str | None
    organization_id: str | None
    product_id: str | None
    retry_number: int | None
    items: tuple[Mapping[str, Any], ...]


def parse_body(raw_body: bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal."""
    try:
        return json.loads(raw_body, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise UnusableBody("the body nests too deeply") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise UnusableBody(f"the body is not JSON: {error}") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_notification(body: Any, headers: DeliveryHeaders) -> Notification:
    if not isinstance(body, dict):
        raise UnusableBody("the body is not a JSON object")
    try:
        envelope = _EnvelopeModel.model_validate(body)
    except ValidationError as error:
        raise UnusableBody(f"the envelope is invalid: {_describe(error)}") from error
    items = _payload_items(envelope.payload)
    first_data = items[0] if items else {}
    event_type = envelope.event_type or _text_field(first_data, "eventType") or headers.event_type
    organization_id = (
        envelope.organization_id
        or _text_field(first_data, "organizationId", "organizationID")
        or headers.organization_id
    )
    return Notification(
        notification_id=envelope.notification_id,
        event_type=event_type,
        event_date=_parse_event_date(envelope.event_date),
        event_date_text=envelope.event_date,
        webhook_id=envelope.webhook_id or headers.webhook_id,
        organization_id=organization_id,
        product_id=envelope.product_id or headers.product_name,
        retry_number=envelope.retry_number
        if envelope.retry_number is not None
        else headers.retry_count,
        items=items,
    )


def _payload_items(payload: list[Any] | dict[str, Any] | None) -> tuple[Mapping[str, Any], ...]:
    if payload is None:
        return ()
    raw_items = payload if isinstance(payload, list) else [payload]
    items: list[Mapping[str, Any]] = []
    for index, item in enumerate(raw_items):
        if not isinstance(item, dict):
            raise UnusableBody(f"payload item {index} is not an object")
        data = item.get("data", item)
        if not isinstance(data, dict):
            raise UnusableBody(f"payload item {index} data is not an object")
        # organizationId may sit beside data (TMS shape) rather than inside it.
        if "data" in item and "organizationId" in item and "organizationId" not in data:
            data = {**data, "organizationId": item["organizationId"]}
        items.append(data)
    return tuple(items)


def _text_field(data: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:IDENTIFIER_LENGTH_MAX]
    return None


def _parse_event_date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise UnusableBody(f"eventDate {text[:40]!r} is not an ISO-8601 time") from error
    # The test notification's eventDate carries no offset; Cybersource's clocks are UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_invoice_data(item: Mapping[str, Any], index: int) -> InvoiceData:
    try:
        return InvoiceData.model_validate(item)
    except ValidationError as error:
        raise UnusableBody(f"payload item {index}: {_describe(error)}") from error


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors()[:5]:
        location = ".".join(str(part) for part in detail["loc"]) or "body"
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    return "; ".join(problems)
