"""Query parameters, validated, with errors that name the parameter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, unquote_to_bytes
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from starlette.requests import Request

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX, is_storable
from service.domain.status import InvoiceStatus
from service.fronts.errors import ApiError, bad_parameter
from service.read.cursors import (
    UnreadableCursor,
    decode_page_cursor,
)
from service.read.instants import parse_day, parse_instant, parse_zone
from service.read.invoice_pages import PageKey
from service.read.queries import COLLECTION_DAYS_MAX

PAGE_SIZE_MAX = 500
CURSOR_LENGTH_MAX = 1000
QUERY_PARAMETERS_MAX = 20
# Positions are PostgreSQL BIGINTs: a larger minPosition names no event that can ever exist.
POSITION_MAX = 2**63 - 1

Parameters = TypeVar("Parameters", bound=BaseModel)


class _Strict(BaseModel):
    # Only the names the API documents: a field's Python name is not a parameter.
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


# Dates and instants are strings in the document and nothing else: the schema says so even
# though the validators (not pydantic's lax parsing, which takes epoch numbers) parse them.
Instant = Annotated[
    datetime,
    PlainValidator(parse_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-03-31T00:00:00Z"]}),
]
Day = Annotated[
    date,
    PlainValidator(parse_day),
    WithJsonSchema({"type": "string", "format": "date", "examples": ["2026-03-31"]}),
]
TimeZone = Annotated[
    ZoneInfo,
    PlainValidator(parse_zone),
    WithJsonSchema({"type": "string", "examples": ["Europe/Paris"], "maxLength": 64}),
]
AgingBucket = Literal["current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate"]
UTC_ZONE = ZoneInfo("UTC")

_ORGANIZATION = (
    "Only this organization's invoices. Invoice numbers are unique per organization only; "
    "the empty string names the invoices whose organization is unknown."
)
_ONE_ORGANIZATION = (
    "The organization whose invoice this is. Needed when the number exists in more than one "
    "organization (409 ambiguous_invoice otherwise); the empty string names the unknown "
    "organization."
)
_TIME_ZONE = (
    "IANA time zone in which days begin and end (the as-of day, the collection days and "
    "periods); default UTC."
)


class Consistency(_Strict):
    min_position: int | None = Field(
        None, alias="minPosition", ge=0, le=POSITION_MAX,
        description="Wait (up to 10 s) until the projection has reached this event position; "
        "503 projection_behind otherwise. A position beyond the last recorded event is a 400.",
    )  # fmt: skip


class MerchantFilter(Consistency):
    merchant: str | None = Field(
        None, max_length=IDENTIFIER_LENGTH_MAX,
        description="Only the invoices of this merchant's organizations (a merchant id the "
        "ledger is configured with). A token limited to merchants sees only theirs whatever "
        "is asked.",
    )  # fmt: skip


class OrganizationFilter(MerchantFilter):
    # "" is a value, not an absence: it names the invoices whose organization is unknown.
    organization_id: str | None = Field(
        None, alias="organizationId", max_length=IDENTIFIER_LENGTH_MAX, description=_ORGANIZATION
    )


class Exportable(OrganizationFilter):
    format: Literal["json", "csv"] | None = Field(
        None,
        description="csv answers the items as CSV (as Accept: text/csv does); this parameter "
        "wins over Accept.",
    )


class InvoiceParameters(MerchantFilter):
    organization_id: str | None = Field(
        None, alias="organizationId", max_length=IDENTIFIER_LENGTH_MAX,
        description=_ONE_ORGANIZATION,
    )  # fmt: skip
    as_of: Instant | None = Field(
        None, alias="asOf",
        description="Provider time (RFC 3339: an ISO-8601 instant with an offset; no epoch "
        "numbers): the invoice as the facts dated up to then describe it.",
    )  # fmt: skip


class InvoiceEventsParameters(MerchantFilter):
    organization_id: str | None = Field(
        None, alias="organizationId", max_length=IDENTIFIER_LENGTH_MAX,
        description=_ONE_ORGANIZATION,
    )  # fmt: skip
    format: Literal["json", "csv"] | None = Field(
        None, description="csv answers the events as CSV (data as JSON text)."
    )


class InvoiceListParameters(Exportable):
    status: InvoiceStatus | None = Field(None, description="Only invoices in this status.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    due_before: Day | None = Field(None, alias="dueBefore", description="Due strictly before.")
    due_after: Day | None = Field(None, alias="dueAfter", description="Due strictly after.")
    updated_since: Instant | None = Field(
        None, alias="updatedSince",
        description="Updated at or after (RFC 3339: an ISO-8601 instant with an offset).",
    )  # fmt: skip
    aging_bucket: AgingBucket | None = Field(
        None, alias="agingBucket",
        description="Only the invoices in this bucket of the aging report as of asOf (the "
        "same rule: open at the end of that day in timeZone, by days past due).",
    )  # fmt: skip
    as_of: Day | None = Field(
        None, alias="asOf", description="With agingBucket: the aging report's day; default today."
    )
    customer_name: str | None = Field(
        None, alias="customerName", max_length=IDENTIFIER_LENGTH_MAX,
        description="Only invoices stating this payer name (as a groupBy=customer row of the "
        "aging report names it); the empty string names those stating none.",
    )  # fmt: skip
    customer_email: str | None = Field(
        None, alias="customerEmail", max_length=IDENTIFIER_LENGTH_MAX,
        description="Only invoices stating this payer email; the empty string names those "
        "stating none.",
    )  # fmt: skip
    time_zone: TimeZone | None = Field(None, alias="timeZone", description=_TIME_ZONE)
    limit: int = Field(
        100, ge=1, le=PAGE_SIZE_MAX,
        description="Page size; a CSV export has every page, read this many rows at a time.",
    )  # fmt: skip
    cursor: str | None = Field(
        None, max_length=CURSOR_LENGTH_MAX, description="nextCursor of the previous page."
    )


class OutstandingParameters(Exportable):
    as_of: Instant | None = Field(
        None, alias="asOf",
        description="Provider time (RFC 3339: an ISO-8601 instant with an offset); default now.",
    )  # fmt: skip


class AgingParameters(Exportable):
    as_of: Day | None = Field(
        None, alias="asOf", description="Date (its end, in timeZone); default today there."
    )
    time_zone: TimeZone | None = Field(None, alias="timeZone", description=_TIME_ZONE)
    group_by: Literal["customer"] | None = Field(
        None, alias="groupBy",
        description="customer: one row per organization, customer and currency.",
    )  # fmt: skip


class CollectionsParameters(Exportable):
    start: Day = Field(alias="from", description="First day (in timeZone).")
    end: Day = Field(alias="to", description="Last day, inclusive (in timeZone).")
    interval: Literal["day", "week", "month"] = Field("day", description="Period length.")
    time_zone: TimeZone | None = Field(None, alias="timeZone", description=_TIME_ZONE)


class StatusParameters(Exportable):
    pass


def parse(model: type[Parameters], query: dict[str, str]) -> Parameters:
    try:
        return model.model_validate(query)
    except ValidationError as error:
        detail = error.errors()[0]
        name = str(detail["loc"][0]) if detail["loc"] else "query"
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not a parameter of this endpoint"
        raise bad_parameter(name, message) from None


def decode_cursor(cursor: str) -> PageKey:
    """The page key a cursor names; anything but a cursor this API issued is a 400."""
    try:
        return decode_page_cursor(cursor)
    except UnreadableCursor:
        raise bad_parameter("cursor", "is not a cursor this API issued") from None


def collection_range(parameters: CollectionsParameters) -> None:
    if parameters.end < parameters.start:
        raise bad_parameter("to", "must not be before from")
    if (parameters.end - parameters.start).days > COLLECTION_DAYS_MAX:
        raise bad_parameter("to", f"the range may span at most {COLLECTION_DAYS_MAX} days")


def decoded_text(raw: bytes, name: str) -> str:
    """Percent-decoded UTF-8 text that a database can compare; 400 naming ``name`` otherwise."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise bad_parameter(name, "is not UTF-8 text once percent-decoded") from None
    if not is_storable(text):
        raise bad_parameter(name, "contains a NUL character")
    return text


def query_dict(query_string: bytes) -> dict[str, str]:
    """The raw query string as a dict, decoded strictly (never with replacement characters);
    a repeated parameter is an error, not a silent pick."""
    result: dict[str, str] = {}
    for pair in filter(None, query_string.split(b"&")):
        raw_name, _, raw_value = pair.partition(b"=")
        name = decoded_text(raw_name.replace(b"+", b" "), "query")
        value = decoded_text(raw_value.replace(b"+", b" "), name)
        if name in result:
            raise bad_parameter(name, "is given more than once")
        if len(result) == QUERY_PARAMETERS_MAX:
            raise bad_parameter("query", f"has more than {QUERY_PARAMETERS_MAX} parameters")
        result[name] = value
    return result


INVOICES_PATH_PREFIX = b"/v1/invoices/"


def invoice_path(scope: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(invoice number, sub-resource) of a path under /v1/invoices/, None if it names none.

    Read from the raw path, so that a number containing "/" (sent as %2F) is one segment.
    """
    raw_path = scope.get("raw_path")
    if not raw_path or INVOICES_PATH_PREFIX not in raw_path:
        # No raw path from the server (it is optional in ASGI): quote the decoded one again.
        raw_path = quote(scope["path"], safe="/", errors="surrogatepass").encode("ascii")
    rest = raw_path[raw_path.index(INVOICES_PATH_PREFIX) + len(INVOICES_PATH_PREFIX) :]
    match rest.split(b"/"):
        case [number] if number:
            sub_resource = None
        case [number, b"events"] if number:
            sub_resource = "events"
        case _:
            return None
    invoice_number = decoded_text(number, "invoiceNumber")
    if len(invoice_number) > IDENTIFIER_LENGTH_MAX:
        raise bad_parameter("invoiceNumber", f"is longer than {IDENTIFIER_LENGTH_MAX} characters")
    return invoice_number, sub_resource


# A request body an operator's action sends (a reason, an export's period): small.
REQUEST_BODY_BYTES_MAX = 4096


async def json_body(request: Request, model: type[Parameters], example: str) -> Parameters:
    """The request's JSON body as ``model``: 413 past ``REQUEST_BODY_BYTES_MAX``, 400 naming
    the first field that does not read, or showing ``example`` when it is not JSON."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > REQUEST_BODY_BYTES_MAX:
            too_large = f"the body exceeds {REQUEST_BODY_BYTES_MAX} bytes"
            raise ApiError(413, "body_too_large", too_large)
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_body", f"the body must be JSON: {example}") from None
    try:
        return model.model_validate(document)
    except ValidationError as error:
        detail = error.errors()[0]
        name = ".".join(str(part) for part in detail["loc"]) or "body"
        raise ApiError(400, "bad_body", f"{name}: {detail['msg']}") from None
