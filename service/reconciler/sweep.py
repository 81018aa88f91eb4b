"""A sweep: every invoice Cybersource lists, compared with the ledger, and the details of
those the list's summary cannot vouch for fetched and reconciled a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Coroutine, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from service.reconciler.answers import CybersourceError
from service.reconciler.client import CybersourceClient
from service.reconciler.outcomes import (
    FailureObserver,
    InvoiceReconciled,
    ReconcilerFailure,
    SweepSummary,
)
from service.reconciler.summaries import (
    FetchReason,
    LedgerInvoice,
    ListedInvoice,
    UnnamedInvoice,
    fetch_reason,
    read_listed_invoice,
)

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

Page = TypeVar("Page")
# Reconciles one invoice of one organization: (invoice number, organization) -> its outcome.
ReconcileInvoice = Callable[[str, str], Coroutine[Any, Any, InvoiceReconciled]]


class LedgerView(Protocol):
    """What the ledger holds of the invoices on one page of the list, by number."""

    async def invoices(
        self, organization_id: str, invoice_numbers: Collection[str]
    ) -> dict[str, LedgerInvoice]: ...


@dataclass(frozen=True)
class InvoiceSweep:
    """One sweep of some statuses across some organizations, counted in ``summary``."""

    client: CybersourceClient
    ledger: LedgerView | None
    reconcile_invoice: ReconcileInvoice
    summary: SweepSummary
    failed: FailureObserver

    async def run(
        self,
        statuses: Sequence[str],
        organizations: Sequence[str],
        on_invoice: Callable[[InvoiceReconciled], None] | None = None,
    ) -> SweepSummary:
        """Status by status across the organizations, so that every organization's open invoices
        come before any organization's settled ones. Cancelling the sweep stops it between
        invoices: the invoices in flight are abandoned before their appends or finish them
        (one answer's facts are written together), and nothing else is written."""
        summary = self.summary
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
            listings = _read_ahead(self._listed_pages(statuses, organizations))
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
                listing = self.client.iterate_invoice_pages(
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
                self.failed(ReconcilerFailure.UNNAMED_INVOICE)
                log.warning(
                    "reconciler.unnamed_invoice", organization_id=organization, error=str(error)
                )
                summary.count_unnamed(organization, str(error))
        ledger: dict[str, LedgerInvoice] = {}
        if not summary.full and self.ledger is not None:
            numbers = {item.invoice_number for item in listed}
            ledger = await self.ledger.invoices(organization, numbers)
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
