"""The lines of an accounting export, as stored and digested (service.store.accounting_exports)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

PAYMENT, REVERSAL, RECEIVABLE = "payment", "reversal", "receivable"


@dataclass(frozen=True, slots=True)
class ExportRecord:
    export_id: int
    kind: str
    period_from: date
    period_to: date
    created_at: datetime
    created_by: str
    content_digest: str
    line_count: int
    merchant: str | None = None  # None: every merchant's organizations


@dataclass(frozen=True, slots=True)
class ExportLine:
    line: int
    kind: str  # PAYMENT, REVERSAL or RECEIVABLE
    organization_id: str
    invoice_number: str
    sequence: int
    occurred_at: datetime | None
    due_date: date | None
    currency: str
    amount: Decimal  # never negative: a reversal's kind gives its sign
    provisional: bool
    source: str
    position: int
    # Read from the invoice when downloaded, never stored with the line.
    customer_name: str | None = None
    customer_email: str | None = None
    customer_erased: bool = False

    @property
    def identity(self) -> tuple[str, str, int]:
        return (self.organization_id, self.invoice_number, self.sequence)

    @property
    def posted(self) -> tuple[datetime | None, str, Decimal]:
        """What accounting books of a payment: changing any of these reverses it."""
        return (self.occurred_at, self.currency, self.amount)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def end_of_period(period_to: date) -> datetime:
    """The first instant after the period (its last day is inclusive, in UTC); the last day
    of the calendar has none, so its period ends at the last instant there is."""
    if period_to == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return start_of_day(period_to + timedelta(days=1))


def content_digest(
    kind: str, period_from: date, period_to: date, lines: Sequence[ExportLine]
) -> str:
    """SHA-256 of the export's content as stored (format-independent, no personal data)."""
    document = [kind, period_from.isoformat(), period_to.isoformat(), *map(_digested, lines)]
    encoded = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(encoded).hexdigest()


def _digested(line: ExportLine) -> list[Any]:
    return [
        line.line,
        line.kind,
        line.organization_id,
        line.invoice_number,
        line.sequence,
        None if line.occurred_at is None else line.occurred_at.isoformat(),
        None if line.due_date is None else line.due_date.isoformat(),
        line.currency,
        str(line.amount),
        line.provisional,
        line.source,
        line.position,
    ]


def stored(line: ExportLine) -> dict[str, Any]:
    return {
        "line": line.line,
        "kind": line.kind,
        "organization_id": line.organization_id,
        "invoice_number": line.invoice_number,
        "sequence": line.sequence,
        "occurred_at": line.occurred_at,
        "due_date": line.due_date,
        "currency": line.currency,
        "amount": line.amount,
        "provisional": line.provisional,
        "source": line.source,
        "position": line.position,
    }


def line_of(row: Any) -> ExportLine:
    return ExportLine(
        row.line,
        row.kind,
        row.organization_id,
        row.invoice_number,
        row.sequence,
        row.occurred_at,
        row.due_date,
        row.currency,
        row.amount,
        row.provisional,
        row.source,
        row.position,
    )


def record_of(row: Any) -> ExportRecord:
    return ExportRecord(
        row.id,
        row.kind,
        row.period_from,
        row.period_to,
        row.created_at,
        row.created_by,
        row.content_digest,
        row.line_count,
        row.merchant,
    )
