"""Asking Cybersource about invoices and appending what the ledger lacks, idempotently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import fold
from service.reconciler.client import CybersourceClient, CybersourceError
from service.reconciler.facts import (
    InvalidInvoiceDetails,
    ReconcilerFacts,
    observation_is_news,
    read_details,
    reconciler_facts,
)
from service.store.errors import StoreUnavailable
from service.store.event_store import AppendOutcome, AppendResult, SqlEventStore

log = structlog.get_logger("service.reconciler")

# Open invoices first: they are the ones whose state a lost webhook leaves wrong.
SWEEP_STATUS_ORDER = ("PENDING", "PARTIAL", "SENT", "CREATED", "DRAFT", "PAID", "CANCELED")
SWEEP_CONCURRENCY = 8


@dataclass(frozen=True)
class InvoiceReconciled:
    invoice_number: str
    appended: int = 0
    conflicts: int = 0
    error: str | None = None


@dataclass
class SweepSummary:
    checked: int = 0
    changed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: InvoiceReconciled) -> None:
        self.checked += 1
        self.changed += bool(outcome.appended)
        if outcome.error:
            self.failed += 1
            self.errors.append(f"{outcome.invoice_number}: {outcome.error}")


class Reconciler:
    def __init__(self, client: CybersourceClient, store: SqlEventStore) -> None:
        self._client = client
        self._store = store

    async def reconcile_invoice(self, invoice_number: str) -> InvoiceReconciled:
        try:
            details = read_details(await self._client.get_invoice(invoice_number))
            results = await self._record(reconciler_facts(details, self._client.merchant_id))
        except (CybersourceError, InvalidInvoiceDetails, StoreUnavailable) as error:
            log.warning("reconciler.failed", invoice_number=invoice_number, error=str(error))
            return InvoiceReconciled(invoice_number, error=str(error))
        outcomes = [result.outcome for result in results]
        reconciled = InvoiceReconciled(
            invoice_number,
            appended=outcomes.count(AppendOutcome.APPENDED),
            conflicts=outcomes.count(AppendOutcome.CONFLICT),
        )
        if reconciled.conflicts:
            log.error("reconciler.conflict", invoice_number=invoice_number)
        if reconciled.appended:
            log.info(
                "reconciler.appended", invoice_number=invoice_number, events=reconciled.appended
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

    async def sweep(
        self,
        statuses: tuple[str, ...] = SWEEP_STATUS_ORDER,
        on_invoice: Callable[[InvoiceReconciled], None] | None = None,
    ) -> SweepSummary:
        """Every invoice Cybersource lists with these statuses, reconciled a few at a time."""
        summary = SweepSummary()
        running: set[asyncio.Task[InvoiceReconciled]] = set()

        def account(task: asyncio.Task[InvoiceReconciled]) -> None:
            outcome = task.result()
            summary.count(outcome)
            if on_invoice:
                on_invoice(outcome)

        for status in statuses:
            try:
                async for invoice in self._client.iterate_invoices(status):
                    if len(running) >= SWEEP_CONCURRENCY:
                        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        running -= done
                    task = asyncio.create_task(self.reconcile_invoice(str(invoice.get("id"))))
                    task.add_done_callback(account)
                    running.add(task)
            except CybersourceError as error:
                summary.failed += 1
                summary.errors.append(f"listing {status}: {error}")
        if running:
            await asyncio.wait(running)
        return summary
