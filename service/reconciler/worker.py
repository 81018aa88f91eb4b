"""The reconciler as a background worker beside the server: one active across replicas.

Every few seconds it asks the read model which invoices it has reason to doubt and fetches
each for its organization, at most once per ``refetch_seconds`` per (organization, invoice
number) (repeated triggers coalesce); every ``sweep_interval_seconds`` it sweeps Get List of
Invoices of every configured organization for invoices it never heard of. It never runs
inside a webhook request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from service.domain.identity import UNKNOWN_ORGANIZATION, InvoiceKey
from service.reconciler.reconciler import FailureObserver, Reconciler, ReconcilerFailure
from service.store.errors import StoreUnavailable
from service.store.read_models import SqlReadModelStore

log = structlog.get_logger("service.reconciler")

LEASE_NAME = "reconciler"
LEASE_SECONDS = 60.0
DOUBTS_PER_ROUND_MAX = 50
REMEMBERED_INVOICES_MAX = 100_000
QUIET_FOR = timedelta(days=7)


class DoubtfulInvoices(Protocol):
    async def doubtful_invoices(
        self, now: datetime, quiet_since: datetime, limit: int
    ) -> list[InvoiceKey]: ...


class ReconcilerWorker:
    def __init__(
        self,
        reconciler: Reconciler,
        queries: DoubtfulInvoices,
        read_models: SqlReadModelStore,
        *,
        owner: str,
        sweep_interval_seconds: float,
        poll_seconds: float = 5.0,
        refetch_seconds: float = 3600.0,
        lease_seconds: float = LEASE_SECONDS,
        first_sweep_delay_seconds: float = 0.0,
        on_failure: FailureObserver | None = None,
    ) -> None:
        self._reconciler = reconciler
        self._queries = queries
        self._read_models = read_models
        self._owner = owner
        self._sweep_interval = sweep_interval_seconds
        self._poll = poll_seconds
        self._refetch = refetch_seconds
        self._lease_seconds = lease_seconds
        self._on_failure = on_failure
        self._fetched_at: OrderedDict[InvoiceKey, float] = OrderedDict()
        self._next_sweep = time.monotonic() + first_sweep_delay_seconds

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    if await self._renew_lease():
                        await self.holding_lease(self.round())
                except StoreUnavailable as unavailable:
                    log.warning("reconciler.store_unavailable", error=str(unavailable))
                except Exception:
                    # Reconciling is idempotent and the next round starts afresh: an
                    # unexpected error is reported loudly and the worker carries on, rather
                    # than stopping unnoticed beside a server that still looks healthy.
                    log.exception("reconciler.round_failed")
                    if self._on_failure is not None:
                        self._on_failure(ReconcilerFailure.ROUND_FAILED)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll)
        finally:
            try:
                await self._read_models.release_lease(self._owner, LEASE_NAME)
            except StoreUnavailable:
                log.warning("reconciler.lease_not_released")

    async def _renew_lease(self) -> bool:
        return await self._read_models.acquire_lease(self._owner, self._lease_seconds, LEASE_NAME)

    async def holding_lease(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work`` while renewing the lease; a sweep can outlast one lease by far.

        Returns False, with the work cancelled, if another replica took the lease over.
        """
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._lease_seconds / 3)
                if done:
                    task.result()
                    return True
                if not await self._renew_lease():
                    log.warning("reconciler.lease_lost", owner=self._owner)
                    return False
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def round(self) -> None:
        """Doubts first (they are cheap and urgent), then the sweep when it is due."""
        now = datetime.now(UTC)
        doubts = await self._queries.doubtful_invoices(
            now, now - QUIET_FOR, DOUBTS_PER_ROUND_MAX * 4
        )
        due = [key for key in doubts if self._due(key)][:DOUBTS_PER_ROUND_MAX]
        for key in due:
            self._remember(key)
            organization = self._organization_to_ask(key)
            if organization is not None:
                await self._reconciler.reconcile_invoice(key.invoice_number, organization)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval
            summary = await self._reconciler.sweep()
            for organization, counts in summary.by_organization.items():
                (log.warning if counts.failed else log.info)(
                    "reconciler.swept",
                    organization_id=organization,
                    checked=counts.checked,
                    changed=counts.changed,
                    failed=counts.failed,
                )

    def _organization_to_ask(self, key: InvoiceKey) -> str | None:
        """The organization to fetch a doubtful invoice for, or None to leave it to the sweep.

        Logged at most once per ``refetch_seconds`` per invoice: the caller remembers it."""
        configured = self._reconciler.organizations
        if key.organization_id in configured:
            return key.organization_id
        if key.organization_id == UNKNOWN_ORGANIZATION:
            if len(configured) == 1:
                return configured[0]
            # Invoice numbers are per organization: asking each would guess. The sweep lists
            # every organization's invoices and names the organization of what it finds.
            log.info("reconciler.organization_unknown", invoice_number=key.invoice_number)
            return None
        log.warning(
            "reconciler.organization_not_configured",
            organization_id=key.organization_id,
            invoice_number=key.invoice_number,
            detail="LEDGER_CYBERSOURCE_ORGANIZATION_IDS does not list it",
        )
        return None

    def _due(self, key: InvoiceKey) -> bool:
        fetched = self._fetched_at.get(key)
        return fetched is None or time.monotonic() - fetched >= self._refetch

    def _remember(self, key: InvoiceKey) -> None:
        self._fetched_at[key] = time.monotonic()
        self._fetched_at.move_to_end(key)
        while len(self._fetched_at) > REMEMBERED_INVOICES_MAX:
            self._fetched_at.popitem(last=False)
