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
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import fold
from service.reconciler.answers import CybersourceError, CybersourceNotFound
from service.reconciler.client import CybersourceClient
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
from service.reconciler.outcomes import (
    FailureObserver,
    InvoiceReconciled,
    ReconcilerFailure,
    SweepCounts,
    SweepSummary,
    TransactionLookup,
    TransactionLookupObserver,
)
from service.reconciler.sweep import SWEEP_STATUS_ORDER, InvoiceSweep, LedgerView
from service.store.errors import StoreUnavailable
from service.store.events.base import AppendOutcome, AppendResult, EventStore

log = structlog.get_logger("service.reconciler")

# Transaction Details calls after one invoice's answer. An invoice paid in more installments
# than this has the rest asked about the next time it is fetched: a transaction whose amount
# is recorded is never asked about again.
TRANSACTION_LOOKUPS_PER_INVOICE_MAX = 10

Result = TypeVar("Result")


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
        time (see ``InvoiceSweep.run``). Each merchant's organizations are swept beside the
        others', each at its own rate limit, into one summary."""
        chosen = [choose_organization(named, self.organizations) for named in organizations]
        swept = tuple(chosen) or self.organizations
        summary = SweepSummary(
            full=full or self._ledger is None,
            by_organization={name: SweepCounts() for name in swept},
        )
        sweeps = [
            InvoiceSweep(
                self._client, self._ledger, self.reconcile_invoice, summary, self._failed
            ).run(statuses, group, on_invoice)
            for group in self._client.merchant_groups(swept)
        ]
        await _side_by_side(sweeps)
        return summary

    def _failed(self, reason: ReconcilerFailure) -> None:
        if self._on_failure is not None:
            self._on_failure(reason)


@dataclass(frozen=True)
class _TransactionsObserved:
    results: list[AppendResult] = field(default_factory=list)
    error: str | None = None


async def _side_by_side(work: Sequence[Coroutine[Any, Any, Any]]) -> None:
    """Run ``work`` concurrently; the first error (a store outage, say) stops the rest and is
    raised as it is, as one sweep's would be."""
    tasks = [asyncio.ensure_future(each) for each in work]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the first error is the one raised


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
