"""Asking Cybersource about invoices and appending what the ledger lacks, idempotently.

The reconciler acts for the organizations it is configured with (a portfolio key's children,
or the key's own merchant); every call, fact and outcome names the organization it is for.

Once an invoice's answer is recorded, each PAYMENT entry that names a transaction but no amount,
whose amount the ledger still cannot attribute (from the history, the webhooks or an earlier
answer), is asked about once through the Transaction Details API: its amount is recorded as a
``TransactionObserved`` fact, at most ``TRANSACTION_LOOKUPS_PER_INVOICE_MAX`` per answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    Callable,
    Collection,
    Coroutine,
    Sequence,
)
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import structlog

from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import fold
from service.reconciler.client import CybersourceClient, CybersourceError, CybersourceNotFound
from service.reconciler.facts import (
    InvalidInvoiceDetails,
    InvoiceDetails,
    ReconcilerFacts,
    observation_is_news,
    observed_transactions,
    read_details,
    reconciler_facts,
    transaction_observation,
    transactions_without_amount,
    unattributed_transactions,
)
from service.reconciler.summaries import (
    FetchReason,
    LedgerInvoice,
    ListedInvoice,
    UnnamedInvoice,
    fetch_reason,
    read_listed_invoice,
)
from service.store.errors import StoreUnavailable
from service.store.events.base import AppendOutcome, AppendResult, EventStore

log = structlog.get_logger("service.reconciler")

# Open invoices first: they are the ones whose state a lost webhook leaves wrong.
SWEEP_STATUS_ORDER = ("PENDING", "PARTIAL", "SENT", "CREATED", "DRAFT", "PAID", "CANCELED")
# Invoices reconciled at once: enough to hide each one's database work behind the calls of
# the others (the client bounds the calls in flight and their rate).
SWEEP_CONCURRENCY = 16
# Pages of the list fetched ahead while the invoices of the pages before are reconciled, and
# list calls made at once: few details to fetch leave the list's latency to set the pace.
PAGES_READ_AHEAD = 8
LIST_PAGES_IN_FLIGHT = 4
# Transaction Details calls after one invoice's answer. An invoice paid in more installments
# than this has the rest asked about the next time it is fetched: a transaction whose amount
# is recorded is never asked about again.
TRANSACTION_LOOKUPS_PER_INVOICE_MAX = 10


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
Result = TypeVar("Result")
Page = TypeVar("Page")


class LedgerView(Protocol):
    """What the ledger holds of the invoices on one page of the list, by number."""

    async def invoices(
        self, organization_id: str, invoice_numbers: Collection[str]
    ) -> dict[str, LedgerInvoice]: ...


class OrganizationNotChosen(ValueError):
    """The organization a call is for is not one the reconciler acts for, or, with several
    configured, none was named."""


def choose_organization(named: str | None, configured: Sequence[str]) -> str:
    """The organization to act for: the one named, which must be configured; else the only
    one configured."""
    if named:
        if named not in configured:
            raise OrganizationNotChosen(
                f"organization {named!r} is not configured (configured: {', '.join(configured)})"
            )
        return named
    if len(configured) != 1:
        raise OrganizationNotChosen(
            f"{len(configured)} organizations are configured ({', '.join(configured)}):"
            " name the one the invoice belongs to"
        )
    return configured[0]


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
class SweepSummary:
    checked: int = 0
    fetched: int = 0
    changed: int = 0
    failed: int = 0
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


class Reconciler:
    def __init__(
        self,
        client: CybersourceClient,
        store: EventStore,
        organizations: Sequence[str] = (),
        *,
        ledger: LedgerView | None = None,
        on_failure: FailureObserver | None = None,
        on_transaction_lookup: TransactionLookupObserver | None = None,
    ) -> None:
        """``organizations``: those the reconciler acts for; by default the key's merchant.

        ``ledger``: what the read model holds, against which a sweep compares the list's
        summaries; without it every sweep fetches every invoice."""
        self._client = client
        self._store = store
        self._ledger = ledger
        self.organizations = tuple(organizations) or (client.merchant_id,)
        self._on_failure = on_failure
        self._on_transaction_lookup = on_transaction_lookup

    async def reconcile_invoice(
        self, invoice_number: str, organization_id: str | None = None
    ) -> InvoiceReconciled:
        """Fetch one invoice of ``organization_id`` (by default the only configured one) and
        append what the ledger lacks."""
        organization = choose_organization(organization_id, self.organizations)
        try:
            document = await self._client.get_invoice(invoice_number, organization)
            details = read_details(document)
            facts = reconciler_facts(details, organization)
            results = await _finished_even_if_cancelled(self._record(facts))
        except CybersourceError as error:
            # The client has logged and counted the call with its status and reason.
            return InvoiceReconciled(organization, invoice_number, error=str(error))
        except (InvalidInvoiceDetails, StoreUnavailable) as error:
            reason = (
                ReconcilerFailure.INVALID_DETAILS
                if isinstance(error, InvalidInvoiceDetails)
                else ReconcilerFailure.STORE_UNAVAILABLE
            )
            self._failed(reason)
            log.warning(
                "reconciler.failed",
                organization_id=organization,
                invoice_number=invoice_number,
                reason=reason.value,
                error=str(error),
            )
            return InvoiceReconciled(organization, invoice_number, error=str(error))
        transactions = await self._observe_transactions(details, facts, organization)
        outcomes = [result.outcome for result in [*results, *transactions.results]]
        reconciled = InvoiceReconciled(
            organization,
            invoice_number,
            appended=outcomes.count(AppendOutcome.APPENDED),
            conflicts=outcomes.count(AppendOutcome.CONFLICT),
            error=transactions.error,
            transactions_observed=sum(
                result.outcome is AppendOutcome.APPENDED for result in transactions.results
            ),
        )
        if reconciled.conflicts:
            self._failed(ReconcilerFailure.CONFLICT)
            log.error(
                "reconciler.conflict", organization_id=organization, invoice_number=invoice_number
            )
        if reconciled.appended:
            log.info(
                "reconciler.appended",
                organization_id=organization,
                invoice_number=invoice_number,
                events=reconciled.appended,
            )
        return reconciled

    async def _record(self, facts: ReconcilerFacts) -> list[AppendResult]:
        """Append the history entries the ledger lacks, and the observation when it tells the
        ledger something: new history, or a state other than the one the ledger derives."""
        results = await self._store.append(facts.history)
        news = any(result.outcome is AppendOutcome.APPENDED for result in results)
        if not news:
            observed = facts.observed
            key = InvoiceKey(observed.organization_id or "", observed.invoice_number)
            stream = await self._store.read_stream(observed.invoice_number)
            events = invoices_in_stream(observed.invoice_number, stream).get(key, [])
            ledger = fold(key.invoice_number, events, key.organization_id)
            news = not events or observation_is_news(ledger, observed)
        if news:
            results += await self._store.append([facts.observation])
        return results

    async def _observe_transactions(
        self, details: InvoiceDetails, facts: ReconcilerFacts, organization: str
    ) -> _TransactionsObserved:
        """Ask the Transaction Details API about each payment transaction of this answer whose
        amount neither the history nor anything else the ledger holds attributes, and that
        was never asked about; append each answer's fact as it comes.

        A transaction Cybersource does not know is skipped; any other failure stops the
        lookups (the rest wait for the invoice's next fetch) and is the invoice's error."""
        without_amount = transactions_without_amount(details)
        if not without_amount:
            return _TransactionsObserved()
        number = facts.observed.invoice_number
        observed: list[AppendResult] = []
        try:
            to_ask = await self._transactions_to_ask(number, organization, without_amount)
        except StoreUnavailable as error:
            return self._store_failed(organization, number, error, observed)
        for transaction_id in to_ask:
            called_at = datetime.now(UTC)
            try:
                answer = await self._client.transaction_details(transaction_id, organization)
            except CybersourceNotFound:
                # The client has logged and counted the call; this says what it was for.
                self._looked_up(TransactionLookup.NOT_FOUND)
                log.warning(
                    "reconciler.transaction_not_found",
                    organization_id=organization,
                    invoice_number=number,
                    transaction_id=transaction_id,
                )
                continue
            except CybersourceError as error:
                self._looked_up(TransactionLookup.FAILED)
                return _TransactionsObserved(observed, str(error))
            event = transaction_observation(
                answer,
                organization,
                number,
                invoice_currency=facts.observed.stated.currency,
                called_at=called_at,
            )
            try:
                observed += await _finished_even_if_cancelled(self._store.append([event]))
            except StoreUnavailable as error:
                self._looked_up(TransactionLookup.FAILED)
                return self._store_failed(organization, number, error, observed)
            self._looked_up(TransactionLookup.RECORDED)
        return _TransactionsObserved(observed)

    async def _transactions_to_ask(
        self, invoice_number: str, organization: str, without_amount: list[str]
    ) -> list[str]:
        """Those of ``without_amount`` whose amount the ledger, folded with everything
        recorded, cannot attribute and that were never asked about, oldest first, bounded."""
        stream = await self._store.read_stream(invoice_number)
        key = InvoiceKey(organization, invoice_number)
        events = invoices_in_stream(invoice_number, stream).get(key, [])
        unattributed = unattributed_transactions(fold(invoice_number, events, organization))
        asked_before = observed_transactions(events)
        to_ask = [
            transaction_id
            for transaction_id in without_amount
            if transaction_id in unattributed and transaction_id not in asked_before
        ]
        return to_ask[:TRANSACTION_LOOKUPS_PER_INVOICE_MAX]

    def _store_failed(
        self,
        organization: str,
        invoice_number: str,
        error: StoreUnavailable,
        observed: list[AppendResult],
    ) -> _TransactionsObserved:
        self._failed(ReconcilerFailure.STORE_UNAVAILABLE)
        log.warning(
            "reconciler.failed",
            organization_id=organization,
            invoice_number=invoice_number,
            reason=ReconcilerFailure.STORE_UNAVAILABLE.value,
            error=str(error),
        )
        return _TransactionsObserved(observed, str(error))

    def _looked_up(self, outcome: TransactionLookup) -> None:
        if self._on_transaction_lookup is not None:
            self._on_transaction_lookup(outcome)

    async def sweep(
        self,
        statuses: tuple[str, ...] = SWEEP_STATUS_ORDER,
        on_invoice: Callable[[InvoiceReconciled], None] | None = None,
        organizations: Sequence[str] = (),
        *,
        full: bool = False,
    ) -> SweepSummary:
        """Every invoice Cybersource lists with these statuses, for each organization (by
        default all configured ones), compared with the ledger; the details of those the
        summary cannot vouch for (every one with ``full``) fetched and reconciled a few at a
        time.

        Status by status across the organizations, so that every organization's open invoices
        come before any organization's settled ones. Cancelling the sweep stops it between
        invoices: the invoices in flight are abandoned before their appends or finish them
        (one answer's facts are written together), and nothing else is written."""
        chosen = [choose_organization(named, self.organizations) for named in organizations]
        swept = tuple(chosen) or self.organizations
        summary = SweepSummary(
            full=full or self._ledger is None,
            by_organization={name: SweepCounts() for name in swept},
        )
        running: set[asyncio.Task[InvoiceReconciled]] = set()

        def account(task: asyncio.Task[InvoiceReconciled]) -> None:
            if task.cancelled():
                return
            outcome = task.result()
            summary.count(outcome)
            if on_invoice:
                on_invoice(outcome)

        try:
            # One read-ahead across every listing: the next status's first pages are asked
            # for while the last ones of this status are still being worked on.
            listings = _read_ahead(self._listed_pages(statuses, swept))
            async with aclosing(listings) as pages:
                async for status, organization, page in pages:
                    if isinstance(page, CybersourceError):
                        summary.count_listing_failure(organization, status, str(page))
                        continue
                    for number in await self._to_fetch(page, organization, summary):
                        if len(running) >= SWEEP_CONCURRENCY:
                            done, _ = await asyncio.wait(
                                running, return_when=asyncio.FIRST_COMPLETED
                            )
                            running -= done
                        task = asyncio.create_task(self.reconcile_invoice(number, organization))
                        task.add_done_callback(account)
                        running.add(task)
            if running:
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        return summary

    async def _listed_pages(
        self, statuses: Sequence[str], organizations: Sequence[str]
    ) -> AsyncGenerator[tuple[str, str, list[Any] | CybersourceError], None]:
        """Every page of every listing, status by status and organization by organization,
        each with its status and organization; a listing that failed ends with its error, in
        place of its remaining pages, and the next listing follows."""
        for status in statuses:
            for organization in organizations:
                listing = self._client.iterate_invoice_pages(
                    status, organization_id=organization, pages_in_flight=LIST_PAGES_IN_FLIGHT
                )
                try:
                    async with aclosing(listing) as pages:
                        async for page in pages:
                            yield status, organization, page
                except CybersourceError as error:
                    yield status, organization, error

    async def _to_fetch(
        self, page: list[Any], organization: str, summary: SweepSummary
    ) -> list[str]:
        """The numbers on this page whose details the sweep must fetch, each counted with
        why; a listed item without a number is counted as a failure."""
        listed: list[ListedInvoice] = []
        for item in page:
            try:
                listed.append(read_listed_invoice(item))
            except UnnamedInvoice as error:
                self._failed(ReconcilerFailure.UNNAMED_INVOICE)
                log.warning(
                    "reconciler.unnamed_invoice", organization_id=organization, error=str(error)
                )
                summary.count_unnamed(organization, str(error))
        ledger: dict[str, LedgerInvoice] = {}
        if not summary.full and self._ledger is not None:
            numbers = {item.invoice_number for item in listed}
            ledger = await self._ledger.invoices(organization, numbers)
        to_fetch = []
        for item in listed:
            reason = (
                FetchReason.FULL_SWEEP
                if summary.full
                else fetch_reason(item.summary, ledger.get(item.invoice_number))
            )
            summary.count_checked(organization, reason)
            if reason is not None:
                to_fetch.append(item.invoice_number)
        return to_fetch

    def _failed(self, reason: ReconcilerFailure) -> None:
        if self._on_failure is not None:
            self._on_failure(reason)


@dataclass(frozen=True)
class _TransactionsObserved:
    results: list[AppendResult] = field(default_factory=list)
    error: str | None = None


async def _finished_even_if_cancelled(work: Coroutine[Any, Any, Result]) -> Result:
    """Run ``work`` to its end even if the caller is cancelled meanwhile, then let the
    cancellation through: the facts of one answer are appended together or not at all."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The appends are short transactions; waiting for them keeps a stop prompt.
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation, not the append, is what ends this
        raise


async def _read_ahead(pages: AsyncGenerator[Page, None]) -> AsyncGenerator[Page, None]:
    """The same pages, the next ones fetched while the caller works on the current one."""
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(PAGES_READ_AHEAD)

    async def fetch() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except Exception as error:  # raised to the caller, in order, after the pages before it
            await queue.put(error)
        else:
            await queue.put(None)
        finally:
            await pages.aclose()  # stopped early too: the pages still in flight are dropped

    fetching = asyncio.create_task(fetch())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        fetching.cancel()
        await asyncio.wait({fetching})
