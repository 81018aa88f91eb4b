"""The reconciler as a background worker beside the server: one active across replicas.

Every few seconds it asks the read model which invoices it has reason to doubt and fetches
them, each at most once per ``refetch_seconds`` (repeated triggers coalesce); every
``sweep_interval_seconds`` it sweeps Get List of Invoices for invoices it never heard of.
It never runs inside a webhook request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from service.projections.queries import InvoiceQueries
from service.reconciler.reconciler import Reconciler
from service.store.errors import StoreUnavailable
from service.store.read_models import SqlReadModelStore

log = structlog.get_logger("service.reconciler")

LEASE_NAME = "reconciler"
LEASE_SECONDS = 60.0
DOUBTS_PER_ROUND_MAX = 50
REMEMBERED_INVOICES_MAX = 100_000
QUIET_FOR = timedelta(days=7)


class ReconcilerWorker:
    def __init__(
        self,
        reconciler: Reconciler,
        queries: InvoiceQueries,
        read_models: SqlReadModelStore,
        *,
        owner: str,
        sweep_interval_seconds: float,
        poll_seconds: float = 5.0,
        refetch_seconds: float = 3600.0,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._reconciler = reconciler
        self._queries = queries
        self._read_models = read_models
        self._owner = owner
        self._sweep_interval = sweep_interval_seconds
        self._poll = poll_seconds
        self._refetch = refetch_seconds
        self._lease_seconds = lease_seconds
        self._fetched_at: OrderedDict[str, float] = OrderedDict()
        self._next_sweep = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    if await self._renew_lease():
                        await self.holding_lease(self.round())
                except StoreUnavailable as unavailable:
                    log.warning("reconciler.store_unavailable", error=str(unavailable))
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
        due = [number for number in doubts if self._due(number)][:DOUBTS_PER_ROUND_MAX]
        for number in due:
            self._remember(number)
            await self._reconciler.reconcile_invoice(number)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval
            summary = await self._reconciler.sweep()
            log.info(
                "reconciler.swept",
                checked=summary.checked,
                changed=summary.changed,
                failed=summary.failed,
            )

    def _due(self, invoice_number: str) -> bool:
        fetched = self._fetched_at.get(invoice_number)
        return fetched is None or time.monotonic() - fetched >= self._refetch

    def _remember(self, invoice_number: str) -> None:
        self._fetched_at[invoice_number] = time.monotonic()
        self._fetched_at.move_to_end(invoice_number)
        while len(self._fetched_at) > REMEMBERED_INVOICES_MAX:
            self._fetched_at.popitem(last=False)
