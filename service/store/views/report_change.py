"""The figures of the report aggregates (see views/report_aggregates.py): what opened and closed on
a day, or was collected on it, as one value that adds up exactly, and the days as numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from service.domain.status import OPEN_STATUSES
from service.store.exact_sums import EXACT, PartialSum
from service.store.schema import (
    report_daily_collections,
)

OPEN = frozenset(status.value for status in OPEN_STATUSES)
NO_DUE_DATE = 0  # as a due day: date ordinals start at 1
ZERO = Decimal(0)


def day_number(day: date) -> int:
    return day.toordinal()


def utc_day_number(instant: datetime) -> int:
    return instant.astimezone(UTC).date().toordinal()


def due_day_number(due: date | None) -> int:
    return NO_DUE_DATE if due is None else due.toordinal()


def due_date_of(due_day: int) -> date | None:
    return None if due_day == NO_DUE_DATE else date.fromordinal(due_day)


@dataclass(slots=True)
class ReportChange:
    """Opened and closed invoices (all, and those without a known amount) and amounts, and
    the provisional part of each amount."""

    opened: int = 0
    closed: int = 0
    opened_unknown: int = 0
    closed_unknown: int = 0
    amount_opened: Decimal = ZERO
    amount_closed: Decimal = ZERO
    provisional_opened: Decimal = ZERO
    provisional_closed: Decimal = ZERO

    def add(self, sign: int, closing: bool, amount: Decimal | None, provisional: bool) -> None:
        unknown = 1 if amount is None else 0
        signed = sign * (amount or ZERO)
        signed_provisional = signed if provisional else ZERO
        if closing:
            self.closed += sign
            self.closed_unknown += sign * unknown
            self.amount_closed = EXACT.add(self.amount_closed, signed)
            self.provisional_closed = EXACT.add(self.provisional_closed, signed_provisional)
        else:
            self.opened += sign
            self.opened_unknown += sign * unknown
            self.amount_opened = EXACT.add(self.amount_opened, signed)
            self.provisional_opened = EXACT.add(self.provisional_opened, signed_provisional)

    def merged(self, other: ReportChange) -> ReportChange:
        return ReportChange(
            self.opened + other.opened,
            self.closed + other.closed,
            self.opened_unknown + other.opened_unknown,
            self.closed_unknown + other.closed_unknown,
            EXACT.add(self.amount_opened, other.amount_opened),
            EXACT.add(self.amount_closed, other.amount_closed),
            EXACT.add(self.provisional_opened, other.provisional_opened),
            EXACT.add(self.provisional_closed, other.provisional_closed),
        )

    def minus(self, other: ReportChange) -> ReportChange:
        return ReportChange(
            self.opened - other.opened,
            self.closed - other.closed,
            self.opened_unknown - other.opened_unknown,
            self.closed_unknown - other.closed_unknown,
            EXACT.subtract(self.amount_opened, other.amount_opened),
            EXACT.subtract(self.amount_closed, other.amount_closed),
            EXACT.subtract(self.provisional_opened, other.provisional_opened),
            EXACT.subtract(self.provisional_closed, other.provisional_closed),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.opened or self.closed or self.amount_opened or self.amount_closed
            or self.provisional_opened or self.provisional_closed
        )  # fmt: skip

    @property
    def negative(self) -> bool:
        counts = (self.opened, self.closed)
        amounts = (self.amount_opened, self.amount_closed, self.provisional_opened,
                   self.provisional_closed)  # fmt: skip
        return min(counts) < 0 or min(amounts) < 0

    @property
    def in_force(self) -> PartialSum:
        """What opened less what closed: invoices, those without an amount, their sum and its
        provisional part."""
        return PartialSum(
            self.opened - self.closed,
            self.opened_unknown - self.closed_unknown,
            EXACT.subtract(self.amount_opened, self.amount_closed),
            EXACT.subtract(self.provisional_opened, self.provisional_closed),
        )


BalanceKey = tuple[str, str, int, int]  # organization, currency ("" unknown), due day, day
CollectionKey = tuple[str, str, int]  # organization, currency, day


BALANCE_KEYS = ("organization_id", "currency", "due_day", "day")
TOTAL_KEYS = ("organization_id", "currency", "due_day")
COLLECTION_KEYS = ("organization_id", "currency", "day")


def row_of(table: Any, change: ReportChange) -> dict[str, Any]:
    if table is report_daily_collections:
        return {
            "collections": change.opened,
            "without_amount": change.opened_unknown,
            "amount": change.amount_opened,
            "provisional_amount": change.provisional_opened,
        }
    return {
        "opened": change.opened,
        "closed": change.closed,
        "opened_without_balance": change.opened_unknown,
        "closed_without_balance": change.closed_unknown,
        "balance_opened": change.amount_opened,
        "balance_closed": change.amount_closed,
        "provisional_balance_opened": change.provisional_opened,
        "provisional_balance_closed": change.provisional_closed,
    }


def stored_change(table: Any, row: Mapping[Any, Any]) -> ReportChange:
    if table is report_daily_collections:
        return ReportChange(
            row["collections"], 0, row["without_amount"], 0, row["amount"], ZERO,
            row["provisional_amount"], ZERO,
        )  # fmt: skip
    return ReportChange(
        row["opened"],
        row["closed"],
        row["opened_without_balance"],
        row["closed_without_balance"],
        row["balance_opened"],
        row["balance_closed"],
        row["provisional_balance_opened"],
        row["provisional_balance_closed"],
    )
