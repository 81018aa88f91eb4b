"""What a Cybersource notification looks like, whichever documented envelope variant it
arrives in: the envelope, its payload items, the ``V-C-*`` headers, and the JSON they are in.

Variants seen in Cybersource's documentation and official code:
``payload`` or ``payloads``, each a list or an object; ``organizationId`` or
``organizationID``; ``retryNumber`` as a string or an int; items with their fields under
``data`` or directly; identifiers missing from the body but present in ``V-C-*`` headers.

Parsing is defensive: a field that cannot be read is refused with a message that names the
field and the rule, never the value (which may be personal data).
"""

from __future__ import annotations

import json
import re
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

from service.domain.money import (
    InvalidAmount,
    InvalidCurrency,
    parse_currency,
    parse_optional_amount,
)

IDENTIFIER_LENGTH_MAX = 200
RETRY_NUMBER_MAX = 1_000_000
# An amount's digits before the point that the money parser accepts; a JSON number such as
# 1e999999999 is refused before it is written out as a billion digits.
AMOUNT_INTEGER_DIGITS_MAX = 13


class UnusableBody(ValueError):
    """A body that is not a notification as Cybersource describes it (a correctly signed one
    is kept as a dead letter).

    Its message names the field and the rule, never the value (which may be personal data).
    """


# PostgreSQL text and JSONB cannot hold NUL, and a lone surrogate cannot be encoded at all:
# text carrying either would fail at the database, so it is refused here.
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """Whether ``text`` can be written to a database column as it is."""
    return _UNSTORABLE_CHARACTER.search(text) is None


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
            if not value or not is_storable(value):
                return None  # informational only: an unstorable header is dropped
            return value.strip()[:IDENTIFIER_LENGTH_MAX] or None

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
            raise ValueError("contains a NUL character")
        if not is_storable(value):
            raise ValueError("contains a lone surrogate")
        return value.strip() or None
    return value


def _currency(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return parse_currency(value)
    except InvalidCurrency:
        raise ValueError("is not a three-letter ISO 4217 currency code") from None


def _amount(value: Any) -> Decimal | None:
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() >= (AMOUNT_INTEGER_DIGITS_MAX)
    ):
        raise ValueError("is not a plain, non-negative decimal amount")
    try:
        return parse_optional_amount(value)
    except InvalidAmount:
        raise ValueError("is not a plain, non-negative decimal amount") from None


_RETRY_NUMBER_PATTERN = re.compile(r"[0-9]{1,7}")  # ASCII only: str.isdigit accepts "²"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _retry_number(value: Any) -> int | None:
    """Informational only: an unreadable or absurd retry number is dropped, not fatal."""
    if isinstance(value, str):
        value = int(value.strip()) if _RETRY_NUMBER_PATTERN.fullmatch(value.strip()) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= RETRY_NUMBER_MAX:
        return value
    return None


# The length bound applies to the text only: None (absent or blank) is always acceptable.
BoundedText = Annotated[str, StringConstraints(max_length=IDENTIFIER_LENGTH_MAX)]
Text = Annotated[BoundedText | None, BeforeValidator(_optional_text)]
Amount = Annotated[Decimal | None, BeforeValidator(_amount)]
Currency = Annotated[str | None, BeforeValidator(_currency)]


class Envelope(BaseModel):
    """The notification's envelope: identifiers, event type and date, and its payload."""

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
    def _due_date_is_a_date_string(cls, value: Any) -> Any:
        if value is None or value == "":
            return None  # blank: unknown
        # A JSON number would otherwise be read as a Unix time, and a timestamp as its date.
        if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
            raise ValueError("must be a date written YYYY-MM-DD")
        return value.strip()


def parse_body(raw_body: bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal."""
    try:
        return json.loads(raw_body, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise UnusableBody("the body nests too deeply") from error
    except UnicodeDecodeError as error:
        raise UnusableBody("the body is not JSON: it is not UTF-8") from error
    except json.JSONDecodeError as error:
        raise UnusableBody(f"the body is not JSON: {error.msg} at byte {error.pos}") from error
    except ValueError as error:  # a constant such as NaN, or an integer of too many digits
        raise UnusableBody("the body is not JSON: it holds a value JSON does not allow") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_envelope(body: Any) -> Envelope:
    if not isinstance(body, dict):
        raise UnusableBody("the body is not a JSON object")
    try:
        return Envelope.model_validate(body)
    except ValidationError as error:
        raise UnusableBody(f"the envelope is invalid: {_describe(error)}") from error


def payload_items(payload: list[Any] | dict[str, Any] | None) -> tuple[Mapping[str, Any], ...]:
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


def item_text(data: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that ``data`` gives as non-blank text, bounded."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            if not is_storable(value):
                raise UnusableBody(f"{name} contains a NUL character or a lone surrogate")
            return value.strip()[:IDENTIFIER_LENGTH_MAX]
    return None


def parse_event_date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # The test notification's eventDate carries no offset; Cybersource's clocks are UTC.
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)  # 9999-12-31T23:00-02:00 has no UTC time: OverflowError
    except (ValueError, OverflowError) as error:
        raise UnusableBody("eventDate is not an ISO-8601 time within years 1 to 9999") from error
    return moment


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


# How much of an identifier a log line carries from a body the ledger could not read.
IDENTIFIER_LOGGED_LENGTH_MAX = 100
_LOGGABLE_IDENTIFIER = re.compile(rf"[A-Za-z0-9._:\-]{{1,{IDENTIFIER_LOGGED_LENGTH_MAX}}}")


def dead_letter_identifiers(body: bytes) -> dict[str, str]:
    """The notification id and invoice number of a body that could not be read, where they
    can still be found: for a log line an alert links to. Identifiers only (never a name or
    an amount), and only when they look like identifiers."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    found = {"notification_id": document.get("notificationId")}
    payloads = document.get("payloads", document.get("payload"))
    first = payloads[0] if isinstance(payloads, list) and payloads else payloads
    data = first.get("data") if isinstance(first, dict) else None
    if isinstance(data, dict):
        found["invoice_number"] = data.get("invoiceNumber")
    return {
        name: value
        for name, value in found.items()
        if isinstance(value, str) and _LOGGABLE_IDENTIFIER.fullmatch(value)
    }
