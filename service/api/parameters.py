"""Query parameters, validated, with errors that name the parameter."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from service.api.errors import bad_parameter
from service.domain.invoice import InvoiceStatus
from service.projections.queries import PageKey

PAGE_SIZE_MAX = 500
COLLECTION_DAYS_MAX = 3660

Parameters = TypeVar("Parameters", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be an ISO-8601 instant with an offset, e.g. 2026-01-31T00:00:00Z")
    return value.astimezone(UTC)


AwareInstant = Annotated[datetime, AfterValidator(_aware)]


class Consistency(_Strict):
    min_position: int | None = Field(None, alias="minPosition", ge=0)


class OrganizationFilter(Consistency):
    # "" is a value, not an absence: it names the invoices whose organization is unknown.
    organization_id: str | None = Field(None, alias="organizationId", max_length=200)


class InvoiceParameters(OrganizationFilter):
    as_of: AwareInstant | None = Field(None, alias="asOf")


class InvoiceEventsParameters(OrganizationFilter):
    pass


class InvoiceListParameters(OrganizationFilter):
    status: InvoiceStatus | None = None
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    due_before: date | None = Field(None, alias="dueBefore")
    due_after: date | None = Field(None, alias="dueAfter")
    updated_since: AwareInstant | None = Field(None, alias="updatedSince")
    limit: int = Field(100, ge=1, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(None, max_length=1000)


class OutstandingParameters(OrganizationFilter):
    as_of: AwareInstant | None = Field(None, alias="asOf")


class AgingParameters(OrganizationFilter):
    as_of: date | None = Field(None, alias="asOf")


class CollectionsParameters(OrganizationFilter):
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    interval: str = Field("day", pattern=r"^(day|week|month)$")


class StatusParameters(OrganizationFilter):
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


def encode_cursor(key: PageKey) -> str:
    raw = json.dumps(
        [key.updated_at.isoformat(), key.organization_id, key.invoice_number]
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, organization_id, invoice_number = json.loads(base64.urlsafe_b64decode(padded))
        return PageKey(
            datetime.fromisoformat(updated_at), str(organization_id), str(invoice_number)
        )
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise bad_parameter("cursor", "is not a cursor this API issued") from None


def collection_range(parameters: CollectionsParameters) -> None:
    if parameters.end < parameters.start:
        raise bad_parameter("to", "must not be before from")
    if (parameters.end - parameters.start).days > COLLECTION_DAYS_MAX:
        raise bad_parameter("to", f"the range may span at most {COLLECTION_DAYS_MAX} days")


def query_dict(items: Any) -> dict[str, str]:
    """Query parameters as a dict; a repeated parameter is an error, not a silent pick."""
    result: dict[str, str] = {}
    for name, value in items:
        if name in result:
            raise bad_parameter(name, "is given more than once")
        result[name] = value
    return result
