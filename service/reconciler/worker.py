"""The reconciler as a background worker beside the server: one active across replicas.

Every few seconds it asks the read model which invoices it has reason to doubt and fetches
each for its organization, at most once per ``refetch_seconds`` per (organization, invoice
number) (repeated triggers coalesce); every ``sweep_interval_seconds`` it sweeps Get List of
Invoices of every configured organization, fetching the invoices whose summaries give reason
to (an incremental sweep), and every ``full_sweep_interval_seconds`` (reckoned from the last
full sweep recorded in the database) it fetches every listed invoice. It never runs inside a
webhook request.

``stop()`` (or the ``stop`` event given to ``run``) ends it promptly: the round in progress
is cancelled between invoices (an answer's facts are appended together or not at all), the
lease is released, and the next sweep, here or on another replica, starts from the top of the
list again.

A command's sweep (``reconcile --sweep``) takes the same lease (``command_lease``): over from
the serving reconciler if it holds it, then waiting ``HANDOVER_SECONDS`` before its first call,
by which time the serving one has seen the lease go (it checks every ``LEASE_CHECK_SECONDS``
while it works) and stood by. Two sweepers never call Cybersource at once, so the client-side
rate limit holds for the two together; the serving one takes the lease back at its next round
once the command has released it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from service.domain.identity import UNKNOWN_ORGANIZATION, InvoiceKey
from service.reconciler.outcomes import FailureObserver, ReconcilerFailure, SweepSummary
from service.reconciler.reconciler import Reconciler
from service.store.errors import StoreUnavailable
from service.store.views.leases import LeaseRenewal
from service.store.views.read_model_store import SqlReadModelStore

log = structlog.get_logger("service.reconciler")

LEASE_NAME = "reconciler"
LEASE_SECONDS = 60.0
# How often a holder at work renews the lease, and so how soon it notices it was taken over.
LEASE_CHECK_SECONDS = 2.0
# A command that took the lease over waits this long before calling Cybersource: the holder
# has then checked, found it gone, and cancelled its calls.
HANDOVER_SECONDS = LEASE_CHECK_SECONDS + 1.0
DOUBTS_PER_ROUND_MAX = 50
REMEMBERED_INVOICES_MAX = 100_000
QUIET_FOR = timedelta(days=7)
FULL_SWEEP_INTERVAL_SECONDS = 7 * 24 * 3600.0

# Told of every sweep that ran to its end: its summary, and whether every call succeeded.
SweepObserver = Callable[[SweepSummary, bool], None]


class FullSweepSchedule(Protocol):
    async def full_sweep_due(self, interval_seconds: float) -> bool: ...

    async def full_sweep_completed(self) -> None: ...


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
        full_sweep_interval_seconds: float = FULL_SWEEP_INTERVAL_SECONDS,
        full_sweeps: FullSweepSchedule | None = None,
        on_failure: FailureObserver | None = None,
        on_sweep: SweepObserver | None = None,
    ) -> None:
        self._reconciler = reconciler
        self._queries = queries
        self._read_models = read_models
        self._owner = owner
        self._sweep_interval = sweep_interval_seconds
        self._poll = poll_seconds
        self._refetch = refetch_seconds
        self._lease_seconds = lease_seconds
        self._full_sweep_interval = full_sweep_interval_seconds
        self._full_sweeps = full_sweeps
        self._on_failure = on_failure
        self._on_sweep = on_sweep
        self._stop = asyncio.Event()
        self._fetched_at: OrderedDict[InvoiceKey, float] = OrderedDict()
        self._next_sweep = time.monotonic() + first_sweep_delay_seconds

    def stop(self) -> None:
        """Ask ``run`` to end: the round in progress is cancelled between invoices."""
        self._stop.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Rounds until ``stop()`` is called or ``stop`` is set; then releases the lease."""
        stopping = asyncio.ensure_future(self._stopped(stop))
        round_task: asyncio.Future[None] | None = None
        try:
            while not stopping.done():
                round_task = asyncio.ensure_future(self._leased_round())
                await asyncio.wait({round_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not round_task.done():
                    round_task.cancel()
                    log.info("reconciler.round_cancelled", detail="stopping")
                await asyncio.wait({round_task})
                if not round_task.cancelled():
                    round_task.result()
                await asyncio.wait({stopping}, timeout=self._poll)
        finally:
            stopping.cancel()
            if round_task is not None and not round_task.done():
                # Cancelled from outside (a grace overrun): the round goes with the worker.
                round_task.cancel()
                await asyncio.wait({round_task})
            try:
                await self._read_models.release_lease(self._owner, LEASE_NAME)
            except StoreUnavailable:
                log.warning("reconciler.lease_not_released")

    async def _stopped(self, stop: asyncio.Event | None) -> None:
        waits = [asyncio.ensure_future(self._stop.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _leased_round(self) -> None:
        try:
            if await self._renew_lease():
                await self.holding_lease(self.round())
        except StoreUnavailable as unavailable:
            log.warning("reconciler.store_unavailable", error=str(unavailable))
        except Exception:
            # Reconciling is idempotent and the next round starts afresh: an unexpected
            # error is reported loudly and the worker carries on, rather than stopping
            # unnoticed beside a server that still looks healthy.
            log.exception("reconciler.round_failed")
            if self._on_failure is not None:
                self._on_failure(ReconcilerFailure.ROUND_FAILED)

    async def _renew_lease(self) -> bool:
        return await self._read_models.acquire_lease(self._owner, self._lease_seconds, LEASE_NAME)

    async def holding_lease(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work`` while renewing the lease; a sweep can outlast one lease by far.

        Returns False, with the work cancelled, if another replica took the lease over.
        """
        return await hold_lease(
            self._read_models, self._owner, work, lease_seconds=self._lease_seconds
        )

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
            await self._sweep()

    async def _sweep(self) -> None:
        full = self._full_sweeps is not None and await self._full_sweeps.full_sweep_due(
            self._full_sweep_interval
        )
        log.info("reconciler.sweep_started", full=full)
        summary = await self._reconciler.sweep(full=full)
        succeeded = summary.failed == 0
        if full and self._full_sweeps is not None:
            # Even with some invoices failed: they are retried by the next sweeps, and a
            # full sweep every few minutes would spend the whole API budget.
            await self._full_sweeps.full_sweep_completed()
        for organization, counts in summary.by_organization.items():
            # Each failed call was logged when it failed, with its status and reason.
            (log.warning if counts.failed else log.info)(
                "reconciler.swept",
                organization_id=organization,
                full=summary.full,
                checked=counts.checked,
                fetched=counts.fetched,
                changed=counts.changed,
                failed=counts.failed,
            )
        log.info(
            "reconciler.sweep_fetch_reasons",
            **{reason.value: count for reason, count in summary.fetch_reasons.items()},
        )
        if self._on_sweep is not None:
            self._on_sweep(summary, succeeded)

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


async def hold_lease(
    read_models: SqlReadModelStore,
    owner: str,
    work: Coroutine[Any, Any, None],
    *,
    lease_seconds: float = LEASE_SECONDS,
) -> bool:
    """Run ``work`` while renewing ``owner``'s reconciler lease every ``LEASE_CHECK_SECONDS``
    (at most a third of the lease). False, with the work cancelled, once another took it over.
    """
    renewal = LeaseRenewal(
        read_models, owner, lease_seconds, LEASE_NAME, renew_every_seconds=LEASE_CHECK_SECONDS
    )
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=renewal.renew_every_seconds)
            if done:
                task.result()
                return True
            if not await renewal.renew():
                log.warning("reconciler.lease_lost", owner=owner)
                return False
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class LeaseTakenOver(Exception):
    """Another sweeper took the reconciler lease while this command held it."""


@contextlib.asynccontextmanager
async def command_lease(
    read_models: SqlReadModelStore,
    owner: str,
    on_handover: Callable[[], None] | None = None,
) -> AsyncIterator[Callable[[Coroutine[Any, Any, Any]], Coroutine[Any, Any, Any]]]:
    """The reconciler lease for a command's sweep, released at the end.

    Taken over from a live holder (the serving reconciler between or during its rounds):
    ``on_handover`` is told, and the command waits ``HANDOVER_SECONDS`` for the holder to
    stand by. Yields ``run(work)``, which runs ``work`` while renewing the lease and returns
    its result, or raises ``LeaseTakenOver`` (the work cancelled) if another took it back.
    """
    if not await read_models.acquire_lease(owner, LEASE_SECONDS, LEASE_NAME):
        await read_models.acquire_lease(owner, LEASE_SECONDS, LEASE_NAME, take_over=True)
        if on_handover is not None:
            on_handover()
        await asyncio.sleep(HANDOVER_SECONDS)

    async def run(work: Coroutine[Any, Any, Any]) -> Any:
        result: list[Any] = []

        async def keeping_result() -> None:
            result.append(await work)

        if not await hold_lease(read_models, owner, keeping_result()):
            raise LeaseTakenOver("another sweeper took the reconciler lease over")
        return result[0]

    try:
        yield run
    finally:
        try:
            await read_models.release_lease(owner, LEASE_NAME)
        except StoreUnavailable:
            log.warning("reconciler.lease_not_released", owner=owner)
