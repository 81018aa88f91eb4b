"""The Transaction Details API's answer (``GET /tss/v2/transactions/{id}``), read as far as the
ledger needs it: which transaction, when it was submitted, and what it collected.

The SDK's model names the time ``submitTimeUTC``; other SDKs and the invoicing answers write
``submitTimeUtc``: either is read. Amounts are strings in the SDK's model and numbers in some
examples: both are read exactly. An answer without the amount is of no use to the ledger and is
refused, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from service.domain.money import parse_amount

RequiredAmount = Annotated[Decimal, BeforeValidator(parse_amount)]


class InvalidTransactionDetails(ValueError):
    """Cybersource answered something the ledger cannot read; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _AmountDetails(_Model):
    total: RequiredAmount = Field(alias="totalAmount")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class _OrderInformation(_Model):
    amount_details: _AmountDetails = Field(alias="amountDetails")


class _Application(_Model):
    name: str | None = Field(None, max_length=100)
    reason_code: str | None = Field(None, alias="reasonCode", max_length=20)
    r_code: str | None = Field(None, alias="rCode", max_length=20)
    r_flag: str | None = Field(None, alias="rFlag", max_length=100)


class _ApplicationInformation(_Model):
    status: str | None = Field(None, max_length=100)
    reason_code: str | None = Field(None, alias="reasonCode", max_length=20)
    applications: list[_Application] = Field(default_factory=list, max_length=100)


class TransactionDetails(_Model):
    id: str = Field(min_length=1, max_length=200)
    submit_time: datetime | None = Field(
        None, validation_alias=AliasChoices("submitTimeUTC", "submitTimeUtc")
    )
    status: str | None = Field(None, max_length=100)
    reconciliation_id: str | None = Field(None, alias="reconciliationId", max_length=100)
    order: _OrderInformation = Field(alias="orderInformation")
    application_information: _ApplicationInformation | None = Field(
        None, alias="applicationInformation"
    )

    @property
    def amount(self) -> Decimal:
        return self.order.amount_details.total

    @property
    def currency(self) -> str | None:
        return self.order.amount_details.currency

    @property
    def submitted_at(self) -> datetime | None:
        """The submit time, in UTC when the answer named no zone."""
        moment = self.submit_time
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def read_transaction_details(document: dict[str, Any], transaction_id: str) -> TransactionDetails:
    """The answer for ``transaction_id``; an answer about another transaction is refused too."""
    try:
        details = TransactionDetails.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidTransactionDetails(f"{where}: {message}") from None
    if details.id != transaction_id:
        raise InvalidTransactionDetails("id: not the transaction asked for")
    return details
