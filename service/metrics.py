"""Prometheus metrics, in a registry of the app's own (several apps can live in one process)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

HTTP_DURATION_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip


class LedgerMetrics:
    def __init__(self) -> None:
        # No *_created series beside every counter and histogram: they double the series
        # count and say only when this process first counted (process_start_time_seconds does).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        # process_* (CPU, memory, open files, start time) and python_info, in this registry.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.build_info = Gauge(
            "ledger_build_info",
            "Always 1; the running version of invoice-ledger and of Python as labels.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(_installed_version(), platform.python_version()).set(1)
        self.http_requests = Counter(
            "ledger_http_requests",
            "HTTP requests answered, by route template (unmatched for none), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_request_duration_seconds = Histogram(
            "ledger_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ["route", "method"],
            buckets=HTTP_DURATION_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.http_refused = Counter(
            "ledger_http_refused",
            "Connections closed on arrival and requests answered 503 because their client, or"
            " the process, held every slot it may, by reason (client_connections,"
            " open_connections, client_requests, requests).",
            ["reason"],
            registry=self.registry,
        )
        self.projection_lag_events = Gauge(
            "ledger_projection_lag_events",
            "Events recorded but not yet projected (head position minus the checkpoint).",
            registry=self.registry,
        )
        self.projection_lag_seconds = Gauge(
            "ledger_projection_lag_seconds",
            "Age of the oldest event not yet projected; 0 when the projection is current.",
            registry=self.registry,
        )
        self.inbox_rows = Gauge(
            "ledger_inbox_rows",
            "Inbox rows by outcome (refused: rejected without a body; dead_letter: rejected"
            " with one), sampled periodically; a count stops at the sampling cap.",
            ["outcome"],
            registry=self.registry,
        )
        self.deliveries_waiting = Gauge(
            "ledger_deliveries_waiting",
            "Deliveries that wait for an operator, by kind: dead_letter (not replayed into"
            " facts) and conflict (not corrected); neither resolved. Sampled with the inbox"
            " rows; a count stops at the sampling cap.",
            ["kind"],
            registry=self.registry,
        )
        self.notifier_digests = Counter(
            "ledger_notifier_digests",
            "Digests of deliveries waiting for an operator posted by the built-in notifier:"
            " sent (acknowledged) or failed (not acknowledged after its retries).",
            ["outcome"],
            registry=self.registry,
        )
        self.inbox_rows_pruned = Counter(
            "ledger_inbox_rows_pruned",
            "Inbox rows deleted by the retention policy, by kind (refused, accepted, ...).",
            ["kind"],
            registry=self.registry,
        )
        self.refusals_not_recorded = Counter(
            "ledger_refusals_not_recorded",
            "Refused deliveries counted but not written to the inbox (past the recording rate).",
            ["reason"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "ledger_auth_failures",
            "Wrong tokens presented, by surface: api (/v1 bearer), console (console bearer),"
            " console_sign_in (the sign-in form). Throttled attempts (429) are not checked.",
            ["surface"],
            registry=self.registry,
        )
        self.webhook_key_expiry_timestamp_seconds = Gauge(
            "ledger_webhook_key_expiry_timestamp_seconds",
            "When the webhook signing key expires (LEDGER_WEBHOOK_KEY_EXPIRES_AT), Unix time.",
            registry=self.registry,
        )
        self.certificate_expiry_timestamp_seconds = Gauge(
            "ledger_certificate_expiry_timestamp_seconds",
            "When each certificate the ledger holds expires, Unix time, by use"
            " (rest_authentication: LEDGER_CYBERSOURCE_KEY_FILE; notification_decryption:"
            " LEDGER_NOTIFICATION_DECRYPTION_KEYS) and kid.",
            ["use", "kid"],
            registry=self.registry,
        )
        self.notification_decryptions = Counter(
            "ledger_notification_decryptions",
            "Signed encrypted deliveries by outcome: decrypted (with the kid of the key that"
            " did), or why not (unknown_kid, wrong_key, tag_mismatch, malformed,"
            " unsupported_algorithm, no_key; kid empty).",
            ["outcome", "kid"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "ledger_webhook_deliveries",
            "Webhook deliveries by outcome: accepted, duplicate, conflict, ignored, rejected"
            " (refused as untrusted) and dead_letter (signed but unreadable, kept whole).",
            ["outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "ledger_webhook_signature_failures",
            "Deliveries refused because their signature could not be trusted, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.signed_content_matches = Counter(
            "ledger_webhook_signed_content_matches",
            "Verified deliveries by the signed-content form that matched (raw or payload).",
            ["form"],
            registry=self.registry,
        )
        self.store_unavailable = Counter(
            "ledger_webhook_store_unavailable",
            "Deliveries answered 503 because the database was unavailable.",
            registry=self.registry,
        )
        self.payload_forms_busy = Counter(
            "ledger_webhook_payload_forms_busy",
            "Deliveries answered 503 because as many bodies as may already waited for their"
            " payload-form signature check (a flood of bodies that do not verify).",
            registry=self.registry,
        )
        self.acknowledgement_seconds = Histogram(
            "ledger_webhook_acknowledgement_seconds",
            "Time from receiving a delivery to answering it.",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.append_group_deliveries = Histogram(
            "ledger_append_group_deliveries",
            "Deliveries appended together in one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.projector_position = Gauge(
            "ledger_projector_position",
            "Event position the invoice read models reflect (this process's projector).",
            registry=self.registry,
        )
        self.projected_events = Counter(
            "ledger_projector_events",
            "Events projected into the invoice read models by this process.",
            registry=self.registry,
        )
        self.projector_up = Gauge(
            "ledger_projector_up",
            "1 while this process's projector runs (leading or standing by); 0 once it stopped"
            " on an error, or when this process runs none.",
            registry=self.registry,
        )
        self.projector_errors = Counter(
            "ledger_projector_errors",
            "Projector stops on an error (it stops rather than skip an event).",
            registry=self.registry,
        )
        self.reconciler_calls = Counter(
            "ledger_reconciler_calls",
            "Calls to Cybersource's REST API by outcome after retries (answered, refused, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.reconciler_errors = Counter(
            "ledger_reconciler_errors",
            "Reconciler failures by reason: a failed call's (unauthorized, unreachable, ...) or"
            " the reconciler's own (invalid_details, store_unavailable, conflict, round_failed).",
            ["reason"],
            registry=self.registry,
        )
        self.reconciler_transaction_lookups = Counter(
            "ledger_reconciler_transaction_lookups",
            "Transaction Details lookups for payments whose amount the ledger could not"
            " attribute, by outcome (recorded, not_found, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.reconciler_sweep_last_success = Gauge(
            "ledger_reconciler_sweep_last_success_timestamp_seconds",
            "When the reconciler last completed a sweep with every call answered (Unix time).",
            registry=self.registry,
        )


def _installed_version() -> str:
    try:
        return version("invoice-ledger")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
