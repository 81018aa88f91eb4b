"""The one place that builds the ledger's parts from settings.

``serve`` (through ``create_app``), every command and each rebuild worker ask for a
``Ledger`` here: the engine is configured in one place, and each component (event store,
group committer, projector, replayer, corrections, reconciler) is wired once, whichever
entry point runs it. Components never build one another; they are handed what they need.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from functools import cached_property

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.configured_keys import (
    cybersource_client,
    master_key,
    notification_keyring,
    reconciled_organizations,
    webhook_key_organizations,
)
from service.cybersource.webhook_signature import SignedContent, WebhookVerifier
from service.http_server import HttpImplementation, HttpLimits
from service.ingest.corrections import DeliveryCorrections
from service.ingest.decryption import NotificationDecryption, SignatureCovers
from service.ingest.receiver import WebhookReceiver
from service.ingest.replay import DeliveryReplayer
from service.ingest.resolutions import DeliveryResolver
from service.metrics import LedgerMetrics
from service.projections.projector import InvoiceProjector
from service.read.accounting import AccountingExports
from service.read.collected_payments import CollectedPayments
from service.read.delivery_outcomes import DeliveryOutcomes
from service.read.headline import FinanceHeadlines
from service.read.queries import InvoiceQueries
from service.read.sorted_invoices import SortedInvoices
from service.read.statements import CustomerStatements
from service.reconciler.answers import CallFailure, CallOutcome
from service.reconciler.client import CybersourceClient
from service.reconciler.ledger_view import SqlLedgerView
from service.reconciler.outcomes import ReconcilerFailure, SweepSummary, TransactionLookup
from service.reconciler.reconciler import Reconciler
from service.reconciler.sweep_schedule import SqlSweepSchedule
from service.reconciler.worker import ReconcilerWorker
from service.settings import (
    Settings,
    personal_data_master_key,
    resolve_database_url,
)
from service.store.accounting_exports import SqlAccountingExports
from service.store.console_sessions import SqlConsoleSessions
from service.store.database import create_engine, is_postgresql
from service.store.delivery_log import SqlDeliveryLog
from service.store.delivery_queue import SqlDeliveryResolutions
from service.store.errors import StoreUnavailable, unavailability_as_store_error
from service.store.events.base import EventStore
from service.store.events.for_engine import event_store_for
from service.store.events.group_commit import GROUPS_IN_FLIGHT_MAX, GroupCommitter
from service.store.migrations import SchemaNotAtHead, require_schema_at_head
from service.store.personal_data.data_keys import SqlDataKeys
from service.store.personal_data.sealing import MasterKey
from service.store.personal_data.sealing_store import PersonalDataEventStore
from service.store.views.read_model_store import SqlReadModelStore

# A delivery waits at most one SQLite busy timeout for the write lock another process holds,
# then is answered 503 so that the sender retries (its own timeout is near); a command beside
# the serving process waits longer (settings.SQLITE_LOCK_WAIT_SECONDS).
SERVING_SQLITE_LOCK_WAIT_SECONDS = 5.0
# A command's connections: enough for a reconciler's few concurrent reads beside its writes.
COMMAND_POOL_SIZE = 4


def database_url(settings: Settings) -> URL:
    return resolve_database_url(settings.database_url)


def sealing_event_store(engine: AsyncEngine, master: MasterKey | None) -> EventStore:
    """The event store of ``engine`` with personal data sealed and opened on the way."""
    return PersonalDataEventStore(event_store_for(engine), SqlDataKeys(engine, master))


async def verify_personal_data_key(settings: Settings) -> None:
    """PersonalDataKeyMismatch when the configured master key (or its absence) does not fit
    the database's data keys. A database that is away, or not migrated yet, is not checked
    here: commands check on a schema at head, and an append with a wrong key fails loudly."""
    engine = create_engine(database_url(settings), pool_size=1)
    try:
        async with unavailability_as_store_error():  # a refused connection is an OSError
            await require_schema_at_head(engine)
        await SqlDataKeys(engine, master_key(settings)).verify()
    except (StoreUnavailable, SchemaNotAtHead, DBAPIError):
        pass
    finally:
        await engine.dispose()


def http_implementation(settings: Settings) -> HttpImplementation:
    return HttpImplementation(settings.http_implementation)


def http_limits(settings: Settings) -> HttpLimits:
    """Each limit from the setting of the same name, prefixed ``http_``."""
    limits = {field.name: getattr(settings, f"http_{field.name}") for field in fields(HttpLimits)}
    # A share larger than the whole is the whole.
    limits["max_connections_per_client"] = min(
        limits["max_connections_per_client"], limits["max_connections"]
    )
    return HttpLimits(**limits)


def process_owner(role: str | None = None) -> str:
    """Names this process in a lease (projector, reconciler), for operators reading it."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{role}:{base}" if role else f"{base}:{uuid.uuid4().hex[:8]}"


def serving_engine(settings: Settings) -> AsyncEngine:
    return create_engine(
        database_url(settings),
        pool_size=settings.database_pool_size,
        sqlite_lock_wait_seconds=SERVING_SQLITE_LOCK_WAIT_SECONDS,
    )


@dataclass(frozen=True)
class RebuildEngines:
    """Engines for the parallel rebuild's worker processes (it pickles this to each): one
    connection reads while the other writes."""

    url: URL
    # The master key's bytes go to the workers with the rest (pipes between local processes).
    personal_data_key: bytes | None = field(default=None, repr=False)

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def __call__(self) -> AsyncEngine:
        return create_engine(self.url, pool_size=2)

    def event_store(self, engine: AsyncEngine) -> EventStore:
        key = self.personal_data_key
        return sealing_event_store(engine, None if key is None else MasterKey(key))


def rebuild_engines(settings: Settings) -> RebuildEngines:
    key = settings.personal_data_key
    return RebuildEngines(
        database_url(settings), None if key is None else personal_data_master_key(key)
    )


class Ledger:
    """The parts of one process's ledger, all on one engine; built by ``serving_ledger`` or
    ``command_ledger``. The parts that hold no state of their own are built once, on first
    use; the rest (committer, projector, workers) are built by the caller that runs them."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, metrics: LedgerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or LedgerMetrics()

    @cached_property
    def data_keys(self) -> SqlDataKeys:
        return SqlDataKeys(self.engine, master_key(self.settings))

    @cached_property
    def event_store(self) -> EventStore:
        return PersonalDataEventStore(event_store_for(self.engine), self.data_keys)

    @cached_property
    def read_models(self) -> SqlReadModelStore:
        return SqlReadModelStore(self.engine)

    @cached_property
    def queries(self) -> InvoiceQueries:
        return InvoiceQueries(self.engine)

    @cached_property
    def delivery_log(self) -> SqlDeliveryLog:
        return SqlDeliveryLog(self.engine, self.data_keys)

    @cached_property
    def accounting_exports(self) -> AccountingExports:
        return AccountingExports(SqlAccountingExports(self.engine))

    @cached_property
    def delivery_outcomes(self) -> DeliveryOutcomes:
        return DeliveryOutcomes(self.engine)

    @cached_property
    def console_sessions(self) -> SqlConsoleSessions:
        return SqlConsoleSessions(self.engine, self.settings.console_session_seconds)

    @property
    def items_per_delivery_max(self) -> int:
        return self.settings.webhook_items_max

    @cached_property
    def notification_decryption(self) -> NotificationDecryption:
        """ConfigurationError when a key file cannot be used."""
        covers = SignatureCovers(self.settings.notification_signature_covers)
        return NotificationDecryption(notification_keyring(self.settings), covers)

    @cached_property
    def replayer(self) -> DeliveryReplayer:
        return DeliveryReplayer(
            self.delivery_log,
            self.event_store,
            items_per_delivery_max=self.items_per_delivery_max,
            decryption=self.notification_decryption,
            organizations_by_key=webhook_key_organizations(self.settings),
        )

    @cached_property
    def headlines(self) -> FinanceHeadlines:
        return FinanceHeadlines(self.queries, self.engine)

    @cached_property
    def statements(self) -> CustomerStatements:
        return CustomerStatements(self.engine)

    @cached_property
    def sorted_invoices(self) -> SortedInvoices:
        return SortedInvoices(self.engine)

    @cached_property
    def collected_payments(self) -> CollectedPayments:
        return CollectedPayments(self.engine)

    @cached_property
    def resolver(self) -> DeliveryResolver:
        return DeliveryResolver(self.delivery_log, SqlDeliveryResolutions(self.engine))

    @cached_property
    def corrections(self) -> DeliveryCorrections:
        return DeliveryCorrections(
            self.delivery_log,
            self.event_store,
            items_per_delivery_max=self.items_per_delivery_max,
            decryption=self.notification_decryption,
            organizations_by_key=webhook_key_organizations(self.settings),
        )

    def committer(self) -> GroupCommitter:
        return GroupCommitter(
            self.event_store,
            group_size_max=self.settings.append_group_size_max,
            group_wait_seconds=self.settings.append_group_wait_seconds,
            # SQLite takes one writer at a time: a second group would only wait for the lock.
            groups_in_flight_max=GROUPS_IN_FLIGHT_MAX if is_postgresql(self.engine) else 1,
            on_group=self.metrics.append_group_deliveries.observe,
        )

    def receiver(
        self, committer: GroupCommitter, clock: Callable[[], float] | None = None
    ) -> WebhookReceiver:
        settings = self.settings
        verifier = WebhookVerifier(
            {key_id: key for key_id, (key, _) in settings.webhook_keys_by_id.items()},
            tolerance_seconds=settings.webhook_tolerance_seconds,
            signed_content=SignedContent(settings.webhook_signed_content),
            future_skew_seconds=settings.webhook_future_skew_seconds,
            payload_form_max_bytes=settings.webhook_payload_form_max_bytes,
        )
        return WebhookReceiver(
            verifier,
            self.event_store,
            self.metrics,
            appender=committer,
            max_body_bytes=settings.max_body_bytes,
            body_timeout_seconds=settings.http_body_timeout_seconds,
            items_per_delivery_max=settings.webhook_items_max,
            refusals_recorded_per_second=settings.refusals_recorded_per_second,
            clock=clock or time.time,
            decryption=self.notification_decryption,
            organizations_by_key=webhook_key_organizations(self.settings),
        )

    def projector(self) -> InvoiceProjector:
        metrics = self.metrics

        def on_batch(events: int, position: int) -> None:
            metrics.projected_events.inc(events)
            metrics.projector_position.set(position)

        return InvoiceProjector(
            self.event_store,
            self.read_models,
            owner=process_owner(),
            batch_interval_seconds=self.settings.projector_batch_interval_seconds,
            on_batch=on_batch,
        )

    def cybersource_client(self, *, counted: bool = False) -> CybersourceClient:
        """``counted``: its calls are counted in the metrics."""
        return cybersource_client(self.settings, self._count_call if counted else None)

    def reconciler(self, client: CybersourceClient, *, counted: bool = False) -> Reconciler:
        return Reconciler(
            client,
            self.event_store,
            reconciled_organizations(self.settings),
            ledger=SqlLedgerView(self.engine),
            on_failure=self._count_failure if counted else None,
            on_transaction_lookup=self._count_transaction_lookup if counted else None,
        )

    @asynccontextmanager
    async def reconciler_worker(self) -> AsyncIterator[ReconcilerWorker]:
        """The reconciler worker and its client, counted in the metrics; MissingCredentials
        without credentials."""
        metrics = self.metrics
        # Every series from the start at zero, so that an alert on a rate sees its first error.
        for outcome in CallOutcome:
            metrics.reconciler_calls.labels(outcome.value)
        for reason in (*CallFailure, *ReconcilerFailure):
            metrics.reconciler_errors.labels(reason.value)
        for lookup in TransactionLookup:
            metrics.reconciler_transaction_lookups.labels(lookup.value)

        def count_sweep(summary: SweepSummary, succeeded: bool) -> None:
            if succeeded:
                metrics.reconciler_sweep_last_success.set_to_current_time()

        async with self.cybersource_client(counted=True) as client:
            yield ReconcilerWorker(
                self.reconciler(client, counted=True),
                self.queries,
                self.read_models,
                owner=process_owner(),
                sweep_interval_seconds=self.settings.reconcile_interval_seconds,
                full_sweep_interval_seconds=self.settings.reconciler_full_sweep_interval_seconds,
                full_sweeps=SqlSweepSchedule(self.engine),
                on_failure=self._count_failure,
                on_sweep=count_sweep,
            )

    def _count_call(self, outcome: CallOutcome, failure: CallFailure | None) -> None:
        self.metrics.reconciler_calls.labels(outcome.value).inc()
        if failure is not None:
            self.metrics.reconciler_errors.labels(failure.value).inc()

    def _count_failure(self, reason: ReconcilerFailure) -> None:
        self.metrics.reconciler_errors.labels(reason.value).inc()

    def _count_transaction_lookup(self, outcome: TransactionLookup) -> None:
        self.metrics.reconciler_transaction_lookups.labels(outcome.value).inc()


def serving_ledger(settings: Settings) -> Ledger:
    """The serving process's ledger: its pool, and a short wait for SQLite's lock. Its
    engine is disposed of by the app's lifespan."""
    return Ledger(settings, serving_engine(settings))


@asynccontextmanager
async def command_ledger(
    settings: Settings,
    *,
    pool_size: int = COMMAND_POOL_SIZE,
    metrics: LedgerMetrics | None = None,
) -> AsyncIterator[Ledger]:
    """A command's ledger, on a schema at head (SchemaNotAtHead otherwise); its engine is
    disposed of on leaving."""
    engine = create_engine(database_url(settings), pool_size=pool_size)
    try:
        await require_schema_at_head(engine)
        ledger = Ledger(settings, engine, metrics)
        await ledger.data_keys.verify()
        yield ledger
    finally:
        await engine.dispose()
