"""What reconciling tells its callers: one invoice's outcome, a sweep's counts, and the
failures and Transaction Details lookups the service turns into metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from service.reconciler.summaries import FetchReason


class ReconcilerFailure(StrEnum):
    """The reconciler's own failures; a failed call is the client's to report."""

    INVALID_DETAILS = "invalid_details"  # Cybersource answered something the ledger cannot read
    STORE_UNAVAILABLE = "store_unavailable"
    CONFLICT = "conflict"  # a fact's key already names a different fact
    UNNAMED_INVOICE = "unnamed_invoice"  # a listed invoice without an id: nothing to fetch
    ROUND_FAILED = "round_failed"  # the background worker's round raised unexpectedly


class TransactionLookup(StrEnum):
    """How asking the Transaction Details API about one payment transaction ended."""

    RECORDED = "recorded"  # its amount was appended as a TransactionObserved fact
    NOT_FOUND = "not_found"  # Cybersource does not know it: nothing appended
    FAILED = "failed"  # the call failed (the client counted why) or the store was unavailable


FailureObserver = Callable[[ReconcilerFailure], None]
# Told of every Transaction Details lookup once it has ended.
TransactionLookupObserver = Callable[[TransactionLookup], None]


@dataclass(frozen=True)
class InvoiceReconciled:
    """``appended`` counts every fact appended, ``transactions_observed`` the Transaction
    Details answers among them."""

    organization_id: str
    invoice_number: str
    appended: int = 0
    conflicts: int = 0
    error: str | None = None
    transactions_observed: int = 0

    @property
    def invoice(self) -> str:
        """The invoice as people read it: organization and number."""
        return f"{self.organization_id}/{self.invoice_number}"


@dataclass
class SweepCounts:
    """``checked``: invoices listed and compared; ``fetched``: Get Invoice Details calls."""

    checked: int = 0
    fetched: int = 0
    changed: int = 0
    failed: int = 0


@dataclass
class SweepSummary(SweepCounts):
    """The sweep's counts, over all organizations and by organization."""

    full: bool = False
    errors: list[str] = field(default_factory=list)
    by_organization: dict[str, SweepCounts] = field(default_factory=dict)
    fetch_reasons: Counter[FetchReason] = field(default_factory=Counter)

    def _counts(self, organization_id: str) -> tuple[SweepSummary, SweepCounts]:
        return self, self.by_organization.setdefault(organization_id, SweepCounts())

    def count_checked(self, organization_id: str, reason: FetchReason | None) -> None:
        for counts in self._counts(organization_id):
            counts.checked += 1
        if reason is not None:
            self.fetch_reasons[reason] += 1

    def count(self, outcome: InvoiceReconciled) -> None:
        """An invoice whose details were fetched (or whose fetch failed)."""
        for counts in self._counts(outcome.organization_id):
            counts.fetched += 1
            counts.changed += bool(outcome.appended)
            counts.failed += bool(outcome.error)
        if outcome.error:
            self.errors.append(f"{outcome.invoice}: {outcome.error}")

    def count_reconciled(self, outcome: InvoiceReconciled) -> None:
        """An invoice reconciled on its own (``--invoice``): checked and fetched."""
        for counts in self._counts(outcome.organization_id):
            counts.checked += 1
        self.count(outcome)

    def count_unnamed(self, organization_id: str, error: str) -> None:
        for counts in self._counts(organization_id):
            counts.checked += 1
            counts.failed += 1
        self.errors.append(f"listing {organization_id}: {error}")

    def count_listing_failure(self, organization_id: str, status: str, error: str) -> None:
        for counts in self._counts(organization_id):
            counts.failed += 1
        self.errors.append(f"listing {organization_id} {status}: {error}")
