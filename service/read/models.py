"""The documents /v1 answers with, typed once: the OpenAPI schemas, the JSON answers and the
CSV columns are all derived from these models.

Amounts are decimal strings with their currency's exponent, never numbers: a JSON number
is a float to most clients, and money is exact.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.domain.events import EventSource
from service.domain.status import InvoiceStatus

# Amounts are never negative (service.domain.money refuses them), and a "-0" is shown as 0.
AMOUNT_PATTERN = r"^\d+(\.\d+)?$"

Amount = Annotated[
    str,
    Field(
        pattern=AMOUNT_PATTERN,
        description="A decimal string with the currency's exponent.",
        examples=["100.00"],
    ),
]
OrganizationId = Annotated[
    str,
    Field(
        description='The Cybersource organization (merchant) the invoice belongs to; "" '
        "when no fact has named it yet. An invoice is identified by "
        "(organizationId, invoiceNumber).",
        examples=["acme-us"],
    ),
]
INCOMPLETE = (
    "True when an invoice counted in this row lacks an amount the row sums: the row's sums "
    "then cover the known amounts only."
)
KNOWN_SUM = (
    "Sum of the known amounts, a decimal string with the currency's exponent; null when the "
    'row counts invoices and none of their amounts is known (never "0" for unknown).'
)
PROVISIONAL_PART = (
    "The provisional part of {sum}: amounts inferred from webhook notifications alone (a total "
    "from a send notification's balance, say) until Cybersource's answer confirms or corrects "
    'it, and included in {sum}. "0.00" (in the currency\'s exponent) when none of it is '
    "provisional; null only where {sum} is null."
)
BUCKET = (
    'Open balance in this bucket, a decimal string with the currency\'s exponent: "0" when '
    "no invoice is in the bucket, null when invoices are and none of their balances is known."
)


class Document(BaseModel):
    # Field names are the API's camelCase names; the answers are built, never parsed.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Customer(Document):
    name: str | None = Field(description="The payer's name, as the invoice states it.")
    email: str | None = Field(description="The payer's email, as the invoice states it.")
    erased: bool = Field(
        False,
        description="The payer's personal data was erased at their request: name and email"
        " are null for good (amounts, statuses and the audit trail are kept).",
    )


class Payment(Document):
    transactionId: str | None
    amount: Amount | None
    date: datetime
    provisional: bool = Field(
        description="True when the money this payment brought is counted from webhook "
        "notifications alone (its amount inferred from the balances before and after it), "
        "until Cybersource's answer confirms or corrects it."
    )


ProvisionalAmountName = Literal["totalAmount", "balanceAmount", "paidAmount"]


class Invoice(Document):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "organizationId": "acme-us",
                    "invoiceNumber": "INV-1",
                    "status": "PARTIAL",
                    "currency": "USD",
                    "totalAmount": "100.00",
                    "balanceAmount": "60.00",
                    "paidAmount": "40.00",
                    "provisional": [],
                    "dueDate": "2026-03-31",
                    "customer": {"name": "Tanya Lee", "email": "tanya@example.com"},
                    "payments": [
                        {
                            "transactionId": "7001",
                            "amount": "40.00",
                            "date": "2026-03-10T10:00:00Z",
                            "provisional": False,
                        }
                    ],
                    "lastEventAt": "2026-03-10T10:00:00Z",
                    "updatedAt": "2026-03-10T10:00:01.250000Z",
                }
            ]
        }
    )

    organizationId: OrganizationId
    invoiceNumber: str
    status: InvoiceStatus | None
    currency: str | None = Field(description="ISO 4217 code; null while no fact named it.")
    totalAmount: Amount | None
    balanceAmount: Amount | None
    paidAmount: Amount | None = Field(
        description="totalAmount less balanceAmount; never negative: null when either is "
        "unknown or when the facts state a balance above the total (such an invoice is "
        "doubtful and the reconciler asks Cybersource about it)."
    )
    provisional: list[ProvisionalAmountName] = Field(
        description="The amounts of this document that are provisional: inferred from webhook "
        "notifications alone (a total from a send notification's balance, say) and shown as "
        "the best figure until Cybersource's answer confirms or corrects it. Empty when every "
        "amount shown is confirmed; an unknown amount is null, never listed. In CSV, the "
        "names separated by spaces."
    )
    dueDate: date | None
    customer: Customer | None
    payments: list[Payment]
    lastEventAt: datetime | None
    updatedAt: datetime | None


class InvoicePage(Document):
    items: list[Invoice]
    nextCursor: str | None = Field(
        description="Pass as cursor for the next page; null on the last page."
    )


class Event(Document):
    position: int = Field(description="The event's position in the event store.")
    type: str = Field(examples=["InvoiceSent"])
    occurredAt: datetime | None = Field(description="The provider's time of the fact.")
    recordedAt: datetime | None
    source: EventSource
    data: dict[str, Any]
    correctedBy: int | None = Field(
        None,
        description="The position of the operator's correction that stands in this event's"
        " place: the invoice is derived as if the corrected version had been received here."
        " Null when no correction replaces the event.",
    )


class Events(Document):
    organizationId: OrganizationId
    items: list[Event]


class OutstandingRow(Document):
    currency: str | None
    invoices: int
    balanceAmount: Amount | None = Field(description=KNOWN_SUM)
    provisionalBalanceAmount: Amount | None = Field(
        description=PROVISIONAL_PART.format(sum="balanceAmount")
    )
    incomplete: bool = Field(description=INCOMPLETE)


class Outstanding(Document):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [{"currency": "USD", "invoices": 2,
                                     "balanceAmount": "85.50",
                                     "provisionalBalanceAmount": "25.50",
                                     "incomplete": False}]}]
        }
    )  # fmt: skip

    items: list[OutstandingRow]


class AgingRow(Document):
    organizationId: OrganizationId | None = Field(
        None, description="With groupBy=customer: the customer's organization."
    )
    customerName: str | None = Field(None, description="With groupBy=customer.")
    customerEmail: str | None = Field(None, description="With groupBy=customer.")
    currency: str | None
    current: Amount | None = Field(description=BUCKET)
    days1To30: Amount | None = Field(description=BUCKET)
    days31To60: Amount | None = Field(description=BUCKET)
    days61To90: Amount | None = Field(description=BUCKET)
    over90: Amount | None = Field(description=BUCKET)
    noDueDate: Amount | None = Field(description=BUCKET)
    provisionalBalanceAmount: Amount | None = Field(
        description="The provisional part of the row's open balance (its buckets together): "
        "amounts inferred from webhook notifications alone until Cybersource's answer confirms "
        'or corrects it, and included in the buckets. "0.00" when none of it is provisional; '
        "null only when the row counts invoices and none of their balances is known."
    )
    incomplete: bool = Field(description=INCOMPLETE)


class Aging(Document):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "asOf": "2026-03-15",
                    "items": [
                        {
                            "currency": "USD",
                            "current": "60.00",
                            "days1To30": "0.00",
                            "days31To60": "25.50",
                            "days61To90": "0.00",
                            "over90": "0.00",
                            "noDueDate": "0.00",
                            "provisionalBalanceAmount": "0.00",
                            "incomplete": False,
                        }
                    ],
                }
            ]
        }
    )

    asOf: date = Field(description="The day whose end (in timeZone) the balances are as of.")
    items: list[AgingRow] = Field(
        description="One row per currency; with groupBy=customer, one per organization, "
        "customer and currency (organizationId, customerName and customerEmail then set)."
    )


class CollectionsRow(Document):
    period: str = Field(
        description="The period's label: its day, the Monday that starts its week, or its "
        "month (YYYY-MM).",
        examples=["2026-03"],
    )
    currency: str | None
    amount: Amount | None = Field(
        description="Money collected in the period, a decimal string with the currency's "
        "exponent; null when money arrived but none of its amounts is known yet."
    )
    provisionalAmount: Amount | None = Field(description=PROVISIONAL_PART.format(sum="amount"))
    incomplete: bool = Field(description=INCOMPLETE)
    firstDay: date = Field(
        description="The first day the row covers: the period's, or from when the range "
        "starts inside it."
    )
    lastDay: date = Field(
        description="The last day the row covers: the period's, or to when the range ends "
        "inside it."
    )


class Collections(Document):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [{"period": "2026-03", "currency": "USD", "amount": "140.00",
                                     "provisionalAmount": "40.00", "incomplete": False,
                                     "firstDay": "2026-03-01", "lastDay": "2026-03-31"}]}]
        }
    )  # fmt: skip

    items: list[CollectionsRow]


class StatusRow(Document):
    status: InvoiceStatus | None
    currency: str | None
    invoices: int
    totalAmount: Amount | None = Field(description=KNOWN_SUM)
    balanceAmount: Amount | None = Field(description=KNOWN_SUM)
    provisionalTotalAmount: Amount | None = Field(
        description=PROVISIONAL_PART.format(sum="totalAmount")
    )
    provisionalBalanceAmount: Amount | None = Field(
        description=PROVISIONAL_PART.format(sum="balanceAmount")
    )
    incomplete: bool = Field(description=INCOMPLETE)


class StatusReport(Document):
    items: list[StatusRow]


class Error(Document):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"error": "bad_parameter", "detail": "limit: must be at most 500"}]
        },
    )

    error: str = Field(description="A stable, machine-readable code.")
    detail: str = Field(description="What went wrong, naming the parameter when one did.")


class AmbiguousInvoice(Error):
    organizationIds: list[str] = Field(
        description="The organizations that have an invoice with this number: name one with "
        "organizationId."
    )
