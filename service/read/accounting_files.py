"""An accounting export as a file: JSON, generic CSV, and the CSV layouts that Xero's bank
statement import and QuickBooks Online's bank transactions upload accept (see
docs/accounting-export.md). The same export in the same format is always the same bytes.

Every CSV text cell goes through the spreadsheet formula guard (service.read.spreadsheet_cells).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from service.read.accounting import AccountingExport, AccountingExportDocument, AccountingLine
from service.read.spreadsheet_cells import not_a_formula

FileFormat = Literal["json", "csv", "xero", "quickbooks"]
BANK_FORMATS = ("xero", "quickbooks")
GENERIC_COLUMNS = (
    "line", "kind", "date", "organizationId", "invoiceNumber", "sequence", "customer.name",
    "customer.email", "customer.erased", "currency", "amount", "provisional", "dueDate",
    "daysOverdue", "source", "position",
)  # fmt: skip
XERO_COLUMNS = ("Date", "Amount", "Payee", "Description", "Reference")
QUICKBOOKS_COLUMNS = ("Date", "Description", "Amount")
ERASED_PAYEE = "erased"


class FormatRefused(ValueError):
    """The format does not apply to this export, or needs a currency the request did not name."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


def media_type(file_format: FileFormat) -> str:
    return "application/json" if file_format == "json" else "text/csv"


def filename(export: AccountingExport, file_format: FileFormat, currency: str | None) -> str:
    suffix = f"-{currency}" if currency else ""
    extension = "json" if file_format == "json" else "csv"
    return f"{export.kind}-{export.id}{suffix}-{file_format}.{extension}"


def render(
    export: AccountingExport,
    lines: Sequence[AccountingLine],
    file_format: FileFormat,
    currency: str | None = None,
) -> bytes:
    """The export's file; ``currency`` keeps the lines in that currency only (a bank account
    in Xero or QuickBooks holds one currency, so those formats need it when the export holds
    several)."""
    if currency is not None:
        lines = [line for line in lines if line.currency == currency]
    if file_format == "json":
        document = AccountingExportDocument(export=export, lines=list(lines))
        dumped = document.model_dump(mode="json", by_alias=True)
        return (json.dumps(dumped, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    if file_format == "csv":
        return _csv(GENERIC_COLUMNS, [_generic_row(line) for line in lines])
    if export.kind != "payments":
        raise FormatRefused("format", f"{file_format} applies to payments exports only")
    currencies = sorted({line.currency for line in lines})
    if len(currencies) > 1:
        raise FormatRefused(
            "currency",
            f"the export holds several currencies ({', '.join(currencies)}) and a bank "
            "account one: name it",
        )
    if file_format == "xero":
        return _csv(XERO_COLUMNS, [_xero_row(line) for line in lines])
    return _csv(QUICKBOOKS_COLUMNS, [_quickbooks_row(line) for line in lines])


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return not_a_formula(str(value))


def _generic_row(line: AccountingLine) -> list[str]:
    document = line.model_dump(mode="json", by_alias=True)
    cells = []
    for column in GENERIC_COLUMNS:
        value: Any = document
        for key in column.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        cells.append(_text(value))
    return cells


def _payee(line: AccountingLine) -> str:
    if line.customer.erased:
        return ERASED_PAYEE
    return line.customer.name or line.customer.email or ""


def _description(line: AccountingLine) -> str:
    what = "Reversal of payment" if line.kind == "reversal" else "Payment"
    organization = f" ({line.organizationId})" if line.organizationId else ""
    provisional = ", provisional" if line.provisional else ""
    return f"{what} {line.sequence} of invoice {line.invoiceNumber}{organization}{provisional}"


def _day(line: AccountingLine, pattern: str) -> str:
    return "" if line.date is None else line.date.strftime(pattern)


def _xero_row(line: AccountingLine) -> list[str]:
    # Xero: day first, one signed Amount (money in positive).
    return [
        _day(line, "%d/%m/%Y"),
        line.amount,
        _text(_payee(line)),
        _text(_description(line)),
        _text(line.invoiceNumber),
    ]


def _quickbooks_row(line: AccountingLine) -> list[str]:
    # QuickBooks Online's 3-column layout: month first, one signed Amount (deposit positive).
    payee = _payee(line)
    description = _description(line) + (f": {payee}" if payee else "")
    return [_day(line, "%m/%d/%Y"), _text(description), line.amount]
