"""Accounting exports: the payments journal and the open invoices, recorded so that finance
posts each payment once (service.store.accounting_exports), and their documents.

Periods are whole days in UTC, both inclusive. A journal line's amount is signed: a payment
is money in (positive), a reversal of a line exported earlier is negative. Lines carry the
customer as the ledger knows it when downloaded: an erased payer is shown as erased.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from service.domain.identity import OrganizationScope
from service.domain.money import format_amount
from service.read.models import Customer, Document
from service.store.accounting_exports import SqlAccountingExports
from service.store.accounting_lines import RECEIVABLE, REVERSAL, ExportLine, ExportRecord

ExportKind = Literal["payments", "receivables"]
PERIOD_DAYS_MAX = 3660
SignedAmount = Annotated[
    str,
    Field(
        pattern=r"^-?\d+(\.\d+)?$",
        description="A decimal string with the currency's exponent; negative on a reversal.",
        examples=["100.00", "-40.00"],
    ),
]


class PeriodRefused(ValueError):
    """A period whose last day is before its first, or longer than PERIOD_DAYS_MAX."""


class AccountingExport(Document):
    id: int = Field(description="The export's id: download it again by this id.")
    kind: ExportKind = Field(
        description="payments: the journal of payments not exported before, and reversals of "
        "exported ones that changed; receivables: the open invoices at the period's end."
    )
    period_from: date = Field(alias="from", description="First day of the period (UTC).")
    period_to: date = Field(alias="to", description="Last day of the period, inclusive (UTC).")
    created_at: datetime = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy", description="Who made it (a name, never a token).")
    content_digest: str = Field(
        alias="contentDigest",
        description="SHA-256 of the export's lines as recorded, whatever the format.",
    )
    line_count: int = Field(alias="lineCount")
    merchant: str | None = Field(
        None, description="The merchant whose organizations it holds; null: every merchant."
    )


class AccountingExportList(Document):
    items: list[AccountingExport]
    nextCursor: str | None


class AccountingLine(Document):
    line: int = Field(description="The line's number in its export, from 1.")
    kind: Literal["payment", "reversal", "receivable"]
    date: dt.date | None = Field(
        description="The day (UTC) the payment was collected (a reversal: the day of the line "
        "it reverses); null on a receivable."
    )
    organizationId: str
    invoiceNumber: str
    sequence: int | None = Field(
        description="The payment's place among its invoice's collections (null on a "
        "receivable): with the invoice, the payment's identity."
    )
    customer: Customer
    currency: str
    amount: SignedAmount = Field(description="A payment's amount, or a receivable's balance.")
    provisional: bool = Field(description="Inferred from notifications, not yet confirmed.")
    dueDate: dt.date | None
    daysOverdue: int | None = Field(
        description="A receivable's days past due at the period's end (0 when not yet due)."
    )
    source: str = Field(description="The source of the fact the line reflects.")
    position: int = Field(description="The ledger position of the fact the line reflects.")


class AccountingExportDocument(Document):
    export: AccountingExport
    lines: list[AccountingLine]


def export_document(record: ExportRecord) -> AccountingExport:
    return AccountingExport.model_validate(
        {
            "id": record.export_id, "kind": record.kind, "from": record.period_from,
            "to": record.period_to, "createdAt": record.created_at,
            "createdBy": record.created_by, "contentDigest": record.content_digest,
            "lineCount": record.line_count, "merchant": record.merchant,
        }
    )  # fmt: skip


def signed_amount(line: ExportLine) -> str:
    text = format_amount(line.amount, line.currency)
    return "-" + text if line.kind == REVERSAL and line.amount != 0 else text


def line_document(line: ExportLine, period_to: date) -> AccountingLine:
    receivable = line.kind == RECEIVABLE
    overdue = None
    if receivable and line.due_date is not None:
        overdue = max((period_to - line.due_date).days, 0)
    return AccountingLine.model_validate(
        {
            "line": line.line, "kind": line.kind,
            "date": None if line.occurred_at is None else line.occurred_at.date(),
            "organizationId": line.organization_id, "invoiceNumber": line.invoice_number,
            "sequence": None if receivable else line.sequence,
            "customer": Customer(
                name=line.customer_name, email=line.customer_email, erased=line.customer_erased
            ),
            "currency": line.currency, "amount": signed_amount(line),
            "provisional": line.provisional, "dueDate": line.due_date,
            "daysOverdue": overdue, "source": line.source, "position": line.position,
        }
    )  # fmt: skip


class UnknownExport(LookupError):
    """No export has this id."""


class AccountingExports:
    def __init__(self, store: SqlAccountingExports) -> None:
        self._store = store

    async def create(
        self, kind: ExportKind, period_from: date, period_to: date, created_by: str,
        now: datetime, *, merchant: str | None = None, organizations: OrganizationScope = None,
    ) -> AccountingExport:  # fmt: skip
        """Record a new export: for payments, it marks what it holds as posted. A merchant's
        holds the lines of its ``organizations`` only."""
        if period_to < period_from:
            raise PeriodRefused("the period's last day is before its first")
        if (period_to - period_from).days >= PERIOD_DAYS_MAX:
            raise PeriodRefused(f"a period is at most {PERIOD_DAYS_MAX} days")
        record = await self._store.create(
            kind, period_from, period_to, created_by, now,
            merchant=merchant, organizations=organizations,
        )  # fmt: skip
        return export_document(record)

    async def exports(self, limit: int, before_id: int | None = None) -> list[AccountingExport]:
        return [export_document(record) for record in await self._store.exports(limit, before_id)]

    async def export(self, export_id: int) -> tuple[AccountingExport, list[AccountingLine]]:
        record = await self._store.export(export_id)
        if record is None:
            raise UnknownExport(export_id)
        lines = await self._store.lines(export_id)
        return export_document(record), lines_of(lines, record.period_to)


def lines_of(lines: Sequence[ExportLine], period_to: date) -> list[AccountingLine]:
    return [line_document(line, period_to) for line in lines]
