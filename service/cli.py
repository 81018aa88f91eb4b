"""The ``invoice-ledger`` command: migrate, serve, and a signing helper for trying the receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, NoReturn
from wsgiref.simple_server import WSGIServer

import click
import structlog
import uvicorn
from prometheus_client import start_http_server
from tqdm import tqdm

from service.api.documents import event_document
from service.cli_deliveries import deliveries
from service.client_slots import SlotRefusal
from service.cybersource.webhook_signature import SignedContent, sign
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE, RecordedEvent
from service.http_server import (
    LedgerServer,
    ListenFailed,
    bind_listener,
    is_loopback_host,
    server_config,
)
from service.logs import configure_logging
from service.metrics import LedgerMetrics
from service.port_split import PortSplit
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import WORKERS_MAX, rebuild_invoices
from service.reconciler.client import CybersourceClient
from service.reconciler.ledger_view import SqlLedgerView
from service.reconciler.outcomes import SweepSummary
from service.reconciler.reconciler import Reconciler
from service.reconciler.sweep import SWEEP_STATUS_ORDER
from service.reconciler.transport import ClientLimits
from service.reconciler.worker import HANDOVER_SECONDS, LeaseTakenOver, command_lease
from service.settings import (
    ConfigurationError,
    Settings,
    describe_unknown,
    load_settings,
    unknown_variables,
)
from service.store.database import create_engine
from service.store.errors import is_sqlite_lock_timeout, is_unavailability, unavailability_reason
from service.store.event_store_for import event_store_for
from service.store.migrations import SchemaNotAtHead, require_schema_at_head, upgrade_to_head
from service.store.notifications import appended_events_signal
from service.store.read_models import SqlReadModelStore
from service.store.retention import PrunableKind, count_prunable
from service.store.retention import prune as prune_inbox

log = structlog.get_logger("service.cli")

# Errors a reconcile summary lists; the rest are counted (each was logged when it happened).
ERRORS_SHOWN_MAX = 20
JSON_HELP = (
    "Print what was done as one JSON document on stdout (camelCase), instead of the summary line."
)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigurationError as error:
        _fail(str(error))
    configure_logging(settings.log_level)
    unknown = unknown_variables(os.environ)
    strict = settings.strict_settings or click.get_current_context().find_root().params.get(
        "strict_settings", False
    )
    if unknown and strict:
        _fail("; ".join(map(describe_unknown, unknown)) + " (strict settings)")
    for variable in unknown:
        # Names only: a value may be a secret.
        log.warning("settings.unknown_variable", variable=variable.name, closest=variable.closest)
    return settings


def _fail(message: str) -> NoReturn:
    click.echo(f"invoice-ledger: {message}", err=True)
    sys.exit(2)


class LedgerCommands(click.Group):
    """Commands whose database problems end in one line on stderr and exit code 2.

    ``--debug`` lets the exception through, with its traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:
            problem = _database_problem(error)
            if problem is None or ctx.params.get("debug"):
                raise
            _fail(f"{problem} (--debug shows the traceback)")


def _database_problem(error: Exception) -> str | None:
    """One line naming what is wrong with the database, or None for any other error."""
    if isinstance(error, SchemaNotAtHead):
        return f"{error}: run invoice-ledger migrate"
    if is_sqlite_lock_timeout(error):
        return (
            "database locked: another process (invoice-ledger serve, or another command) held"
            " SQLite's write lock for longer than this command waits (30 s; ?timeout=SECONDS on"
            " LEDGER_DATABASE_URL); run it again once the other is done"
        )
    if is_unavailability(error):
        # Connection-level reasons only: a driver's message about a statement can quote its
        # values.
        return (
            f"database unavailable: {unavailability_reason(error)}: check LEDGER_DATABASE_URL"
            " and that the database is up"
        )
    return None


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the operation ran and failed as asked (a delivery that still does"
    " not read, a reconciliation with failures); 2 usage, configuration or database problem"
    " (an invalid option or choice, an unreachable or unmigrated database)."
)


@click.group(
    cls=LedgerCommands,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(package_name="invoice-ledger", prog_name="invoice-ledger")
@click.option("--debug", is_flag=True, help="Show the traceback of a database problem.")
@click.option(
    "--strict-settings",
    is_flag=True,
    help="Refuse to start when a LEDGER_* variable names no setting (LEDGER_STRICT_SETTINGS).",
)
def main(debug: bool, strict_settings: bool) -> None:
    """A ledger of Cybersource invoices, fed by verified webhooks.

    Configuration comes from LEDGER_* environment variables (see docs/configuration.md).
    """


@main.command()
def migrate() -> None:
    """Apply database migrations to LEDGER_DATABASE_URL (safe to run again)."""
    settings = _settings()
    upgrade_to_head(settings.database.render_as_string(hide_password=False))
    # A log line, like everything a deployed migration Job writes to stderr.
    log.info("migrate.at_head", database=settings.database.render_as_string(hide_password=True))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The webhook port (with --internal-port, it serves the webhook and the probes alone).",
)
@click.option(
    "--internal-port",
    type=click.IntRange(1, 65535),
    help="Serve /v1, /console, /metrics and /openapi.json on this port instead, off the"
    " webhook port (default: LEDGER_INTERNAL_PORT; unset, everything on --port).",
)
def serve(host: str, port: int, internal_port: int | None) -> None:
    """Serve the webhook receiver, the query API and operations endpoints.

    Run `migrate` first: the service refuses to report ready on an outdated schema.
    Beyond loopback, /v1 needs LEDGER_API_TOKENS (or LEDGER_API_ALLOW_ANONYMOUS=true).
    SIGTERM or SIGINT stops it within LEDGER_SHUTDOWN_GRACE_SECONDS; a second one at once.
    """
    from service.app import create_app

    settings = _settings()
    internal_port = internal_port or settings.internal_port
    if internal_port == port:
        _fail(f"--internal-port {internal_port} is the webhook port: give another one")
    tokens = settings.api_tokens
    if not is_loopback_host(host) and not (tokens.tokens or tokens.operator_tokens):
        if not settings.api_allow_anonymous:
            _fail(
                f"refusing to serve /v1 without tokens on {host}, beyond loopback: set"
                " LEDGER_API_TOKENS, or LEDGER_API_ALLOW_ANONYMOUS=true to open /v1 to every"
                " client"
            )
        log.warning(
            "serve.anonymous_api",
            host=host,
            detail="LEDGER_API_ALLOW_ANONYMOUS=true: /v1 answers every client without a token",
        )
    listeners = []
    try:
        # Bound before the app exists: a port in use stops here, before any database work.
        for listening_port in (port, internal_port) if internal_port else (port,):
            listeners.append(bind_listener(host, listening_port))
    except ListenFailed as failure:
        for listener in listeners:
            listener.close()
        _fail(str(failure))
    app = create_app(settings)
    refused = app.state.resources.metrics.http_refused
    for refusal in SlotRefusal:
        refused.labels(refusal.value)  # every series from zero, for a rate to see the first
    config = server_config(
        PortSplit(app, internal_port=internal_port) if internal_port else app,
        host=host,
        port=port,
        implementation=settings.http_implementation,
        limits=settings.http_limits,
        on_refusal=lambda refusal: refused.labels(refusal.value).inc(),
    )
    server = LedgerServer(config, app.state.workers, settings.shutdown_grace_seconds)
    try:
        server.run(sockets=listeners)
    finally:
        for listener in listeners:
            listener.close()


@main.command()
@click.option(
    "--older-than",
    "older_than_days",
    required=True,
    type=click.IntRange(1, 36_500),
    metavar="DAYS",
    help="Delete rows received more than DAYS days ago.",
)
@click.option(
    "--outcome",
    "kinds",
    multiple=True,
    type=click.Choice([kind.value for kind in PrunableKind]),
    default=[PrunableKind.REFUSED.value],
    show_default=True,
    help="Which rows (repeatable): refused deliveries (401/408/413, no body), or accepted,"
    " duplicate, ignored ones, whose facts are in the event store. Dead letters, conflicts"
    " and events are never pruned.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def prune(older_than_days: int, kinds: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Delete inbox rows past their retention, oldest first, in bounded batches.

    The serving process applies LEDGER_RETENTION_REFUSED_DAYS and
    LEDGER_RETENTION_ACCEPTED_DAYS on its own; this command is for a one-off run.
    """
    settings = _settings()
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    chosen = [PrunableKind(kind) for kind in dict.fromkeys(kinds)]
    results = asyncio.run(_prune(settings, chosen, cutoff, dry_run))
    if as_json:
        _print_json(
            {
                "dryRun": dry_run,
                "receivedBefore": cutoff.isoformat(),
                "outcomes": [
                    {"outcome": kind.value, "rows": rows, "complete": complete}
                    for kind, rows, complete in results
                ],
            }
        )
        return
    for kind, rows, complete in results:
        verb = "would delete" if dry_run else "deleted"
        more = "" if complete else " (more remain: run again)"
        click.echo(f"{kind.value}: {verb} {rows} rows received before {cutoff.isoformat()}{more}")


async def _prune(
    settings: Settings, kinds: list[PrunableKind], cutoff: datetime, dry_run: bool
) -> list[tuple[PrunableKind, int, bool]]:
    engine = create_engine(settings.database, pool_size=1)
    try:
        await require_schema_at_head(engine)
        results = []
        for kind in kinds:
            if dry_run:
                results.append((kind, await count_prunable(engine, kind, cutoff), True))
            else:
                pruned = await prune_inbox(engine, kind, cutoff)
                results.append((kind, pruned.rows, pruned.complete))
        return results
    finally:
        await engine.dispose()


@main.command()
@click.option("--once", is_flag=True, help="Catch up with the event store, then exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics (ledger_projector_*) on this port at any path. Off by default.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def project(once: bool, metrics_port: int | None, metrics_host: str, as_json: bool) -> None:
    """Run the invoice projector on its own (serve runs one too, unless disabled).

    One projector writes at a time across all replicas; others stand by.
    """
    settings = _settings()
    metrics = LedgerMetrics()
    exporter = _export_metrics(metrics, metrics_host, metrics_port) if metrics_port else None
    try:
        position = asyncio.run(_project(settings, once, metrics))
    except KeyboardInterrupt:
        return
    finally:
        if exporter is not None:
            exporter.shutdown()
    if as_json:
        _print_json({"position": position})
    else:
        click.echo(f"projection at position {position}", err=True)


def _print_json(document: dict[str, Any]) -> None:
    """One document on stdout, alone: logs and progress bars go to stderr."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _export_metrics(metrics: LedgerMetrics, host: str, port: int) -> WSGIServer:
    """A worker has no HTTP server of its own: prometheus_client's serves the registry from a
    daemon thread, so Prometheus sees the worker as it sees `serve`."""
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        _fail(f"cannot serve metrics on {host}:{port}: {error.strerror}")
    return server


async def _project(settings: Settings, once: bool, metrics: LedgerMetrics) -> int:
    from service.app import POLL_SECONDS_POSTGRESQL, POLL_SECONDS_SQLITE, projector_owner

    def on_batch(events: int, position: int) -> None:
        metrics.projected_events.inc(events)
        metrics.projector_position.set(position)

    engine = create_engine(settings.database, pool_size=2)
    try:
        await require_schema_at_head(engine)
        read_models = SqlReadModelStore(engine)
        projector = InvoiceProjector(
            event_store_for(engine), read_models, owner=projector_owner(), on_batch=on_batch
        )
        if once:
            if not await projector.take_lease():
                _fail("another projector holds the lease; it is keeping the projection current")
            try:
                await projector.catch_up()
            finally:
                await projector.release_lease()
            return await read_models.checkpoint()
        stop, wake = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        poll = (
            POLL_SECONDS_POSTGRESQL if engine.dialect.name == "postgresql" else POLL_SECONDS_SQLITE
        )
        async with appended_events_signal(engine, wake):
            metrics.projector_up.set(1)
            try:
                await projector.run(stop, wake, poll)
            except Exception:
                metrics.projector_errors.inc()
                raise
            finally:
                metrics.projector_up.set(0)
        return await read_models.checkpoint()
    finally:
        await engine.dispose()


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, WORKERS_MAX),
    default=min(os.cpu_count() or 1, WORKERS_MAX),
    show_default="the number of CPUs",
    help="Processes folding streams at once (PostgreSQL; SQLite rebuilds in one).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def rebuild(workers: int, as_json: bool) -> None:
    """Replay every event into fresh read models, then swap them in at once.

    Dashboards keep reading the old read models until the swap; a running projector
    stands by meanwhile and continues from the rebuilt position.
    """
    settings = _settings()
    position = asyncio.run(_rebuild(settings, workers))
    if as_json:
        _print_json({"position": position})
    else:
        click.echo(f"read models rebuilt up to position {position}", err=True)


async def _rebuild(settings: Settings, workers: int) -> int:
    engine = create_engine(settings.database, pool_size=2)
    try:
        await require_schema_at_head(engine)
        store = event_store_for(engine)
        # disable=None: a bar only on a terminal, never lines of it in a log.
        with tqdm(
            total=await store.last_position(), unit="event", desc="rebuild", disable=None
        ) as bar:
            position = await rebuild_invoices(
                store, SqlReadModelStore(engine), on_progress=bar.update, workers=workers,
                database_url=settings.database,
            )  # fmt: skip
            # The bar counts events against the last position; positions a rolled-back
            # append reserved hold no event, so the count can end short of it: it is done.
            bar.update(max(0, (bar.total or 0) - bar.n))
            return position
    finally:
        await engine.dispose()


def _cybersource_client(settings: Settings) -> CybersourceClient:
    credentials = settings.cybersource_credentials()
    if credentials is None:
        _fail(
            "set LEDGER_CYBERSOURCE_MERCHANT_ID, LEDGER_CYBERSOURCE_KEY_ID and"
            " LEDGER_CYBERSOURCE_SECRET_KEY to call Cybersource"
        )
    limits = ClientLimits(max_requests_per_second=settings.cybersource_max_requests_per_second)
    return CybersourceClient(settings.cybersource_base_url, credentials, limits)


@main.command()
@click.option("--invoice", "invoices", multiple=True, help="An invoice number (repeatable).")
@click.option(
    "--sweep",
    is_flag=True,
    help="Every invoice Cybersource lists (open ones first), fetching the details of those"
    " whose summaries disagree with the ledger or whose balance can move unseen.",
)
@click.option("--full", is_flag=True, help="With --sweep: fetch the details of every invoice.")
@click.option(
    "--status",
    type=click.Choice(SWEEP_STATUS_ORDER),
    help="With --sweep: only invoices in this status.",
)
@click.option(
    "--forever",
    is_flag=True,
    help="Run the reconciler worker on its own (as serve does) until SIGTERM or SIGINT.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="With --forever: serve Prometheus /metrics on this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="With --metrics-port: the address to serve them on (0.0.0.0 for a scraper elsewhere).",
)
@click.option(
    "--organization",
    "organizations",
    multiple=True,
    metavar="ORG",
    help="The organization the invoices belong to; with --sweep, repeatable to sweep only"
    " these. Default: every configured one (LEDGER_CYBERSOURCE_ORGANIZATION_IDS, else the"
    " merchant).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " Not with --forever.")
def reconcile(
    invoices: tuple[str, ...],
    sweep: bool,
    full: bool,
    status: str | None,
    forever: bool,
    metrics_port: int | None,
    metrics_host: str,
    organizations: tuple[str, ...],
    as_json: bool,
) -> None:
    """Ask Cybersource about invoices and append what the ledger lacks (idempotent).

    Exits non-zero when any call failed.
    """
    if [bool(invoices), sweep, forever].count(True) != 1:
        _fail("give one of --invoice N (one or more), --sweep or --forever")
    if full and not sweep:
        _fail("--full goes with --sweep")
    if metrics_port and not forever:
        _fail("--metrics-port goes with --forever")
    if as_json and forever:
        _fail("--json goes with --invoice or --sweep: --forever runs until stopped")
    if forever:
        if status or organizations:
            _fail("--forever reconciles every configured organization: drop --status and"
                  " --organization")  # fmt: skip
        settings = _settings()
        _organizations_to_reconcile(settings, (), for_invoices=False)
        metrics_address = (metrics_host, metrics_port) if metrics_port else None
        if not asyncio.run(_reconcile_forever(settings, metrics_address)):
            sys.exit(1)
        return
    if invoices and len(organizations) > 1:
        _fail("with --invoice, give one --organization: invoice numbers are per organization")
    settings = _settings()
    chosen = _organizations_to_reconcile(settings, organizations, for_invoices=bool(invoices))
    try:
        summary = asyncio.run(_reconcile(settings, invoices, (sweep, full), status, chosen))
    except LeaseTakenOver:
        click.echo(
            "invoice-ledger: another sweeper took the reconciler lease over; this sweep stopped",
            err=True,
        )
        sys.exit(1)
    if as_json:
        _print_json(_summary_document(summary))
    else:
        _print_summary(summary)
    if summary.failed:
        sys.exit(1)


def _print_summary(summary: SweepSummary) -> None:
    click.echo(
        f"checked {summary.checked}, changed {summary.changed}, failed {summary.failed};"
        f" fetched {summary.fetched}" + _fetch_reasons(summary),
        err=True,
    )
    if len(summary.by_organization) > 1:
        for organization, counts in summary.by_organization.items():
            click.echo(
                f"  {organization}: checked {counts.checked}, changed {counts.changed},"
                f" failed {counts.failed}",
                err=True,
            )
    for error in summary.errors[:ERRORS_SHOWN_MAX]:
        click.echo(f"  {error}", err=True)


def _summary_document(summary: SweepSummary) -> dict[str, Any]:
    """The summary line's facts, in the API's camelCase; fetch reasons keep their names."""
    return {
        "checked": summary.checked,
        "changed": summary.changed,
        "failed": summary.failed,
        "fetched": summary.fetched,
        "fetchReasons": {
            reason.value: count for reason, count in sorted(summary.fetch_reasons.items())
        },
        "organizations": {
            organization: {
                "checked": counts.checked,
                "fetched": counts.fetched,
                "changed": counts.changed,
                "failed": counts.failed,
            }
            for organization, counts in summary.by_organization.items()
        },
        "errors": summary.errors[:ERRORS_SHOWN_MAX],
        "errorsNotShown": max(0, len(summary.errors) - ERRORS_SHOWN_MAX),
    }


def _organizations_to_reconcile(
    settings: Settings, named: tuple[str, ...], *, for_invoices: bool
) -> tuple[str, ...]:
    """The organizations named on the command line, each one configured; with invoices and
    none named, the only configured one."""
    if settings.cybersource_credentials() is None:
        _fail(
            "set LEDGER_CYBERSOURCE_MERCHANT_ID, LEDGER_CYBERSOURCE_KEY_ID and"
            " LEDGER_CYBERSOURCE_SECRET_KEY to call Cybersource"
        )
    configured = settings.cybersource_organizations
    unknown = [organization for organization in named if organization not in configured]
    if unknown:
        _fail(
            f"--organization {unknown[0]} is not configured: LEDGER_CYBERSOURCE_ORGANIZATION_IDS"
            f" (else LEDGER_CYBERSOURCE_MERCHANT_ID) gives {', '.join(configured)}"
        )
    if for_invoices and not named and len(configured) > 1:
        _fail(
            f"{len(configured)} organizations are configured ({', '.join(configured)}):"
            " name the invoices' organization with --organization ORG"
        )
    return named


def _fetch_reasons(summary: SweepSummary) -> str:
    reasons = sorted(summary.fetch_reasons.items())
    if not reasons:
        return ""
    return " (" + ", ".join(f"{reason.value} {count}" for reason, count in reasons) + ")"


async def _reconcile(
    settings: Settings,
    invoices: tuple[str, ...],
    sweep_and_full: tuple[bool, bool],
    status: str | None,
    organizations: tuple[str, ...],
) -> SweepSummary:
    sweep, full = sweep_and_full
    engine = create_engine(settings.database, pool_size=4)
    try:
        await require_schema_at_head(engine)
        async with _cybersource_client(settings) as client:
            reconciler = Reconciler(
                client,
                event_store_for(engine),
                settings.cybersource_organizations,
                ledger=SqlLedgerView(engine),
            )
            with tqdm(
                unit="invoice", desc="reconcile", total=len(invoices) or None, disable=None
            ) as bar:
                if sweep:
                    statuses = (status,) if status else SWEEP_STATUS_ORDER
                    # One sweeper at a time, this command or a serving reconciler: two would
                    # together call Cybersource at twice the configured rate.
                    async with command_lease(
                        SqlReadModelStore(engine), _command_owner(), _say_handover
                    ) as leased:
                        summary: SweepSummary = await leased(
                            reconciler.sweep(
                                statuses,
                                on_invoice=lambda _: bar.update(),
                                organizations=organizations,
                                full=full,
                            )
                        )
                        return summary
                summary = SweepSummary()
                organization = organizations[0] if organizations else None
                for number in invoices:
                    outcome = await reconciler.reconcile_invoice(number, organization)
                    summary.count_reconciled(outcome)
                    bar.update()
                return summary
    finally:
        await engine.dispose()


def _command_owner() -> str:
    """Names this command in the reconciler lease, for operators reading it."""
    return f"reconcile-command:{socket.gethostname()}:{os.getpid()}"


def _say_handover() -> None:
    click.echo(
        "another reconciler (a serving process?) held the lease: taken over; it stands by"
        f" within {HANDOVER_SECONDS:g} s, then this sweep starts",
        err=True,
    )


async def _reconcile_forever(settings: Settings, metrics_address: tuple[str, int] | None) -> bool:
    """The reconciler worker until SIGTERM or SIGINT; False if it overran the grace."""
    from prometheus_client import start_http_server

    from service.app import reconciler_worker, stop_within_grace
    from service.metrics import LedgerMetrics

    metrics = LedgerMetrics()
    engine = create_engine(settings.database, pool_size=4)
    metrics_server = None
    try:
        await require_schema_at_head(engine)
        if metrics_address is not None:
            host, port = metrics_address
            try:
                metrics_server, _ = start_http_server(port, host, registry=metrics.registry)
            except OSError as error:
                _fail(f"--metrics-port {port}: cannot listen on {host} ({error.strerror})")
        async with reconciler_worker(settings, engine, metrics) as worker:
            task = asyncio.create_task(worker.run())
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signal_number, stopping.set)
            click.echo(
                "reconciling every configured organization until SIGTERM or SIGINT", err=True
            )
            await asyncio.wait(
                {task, asyncio.ensure_future(stopping.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
            worker.stop()
            # A second signal while stopping cuts the grace short.
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signal_number, task.cancel)
            stopped = await stop_within_grace(task, settings.shutdown_grace_seconds)
            click.echo("reconciler stopped" if stopped else "reconciler stop overdue", err=True)
            return stopped
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await engine.dispose()


@main.command()
@click.option("--url", required=True, help="The public HTTPS URL of /webhooks/cybersource.")
@click.option("--organization-id", help="Defaults to LEDGER_CYBERSOURCE_MERCHANT_ID.")
def subscribe(url: str, organization_id: str | None) -> None:
    """Create a webhook signing key and a subscription to the invoicing events.

    Prints the keyId and the LEDGER_WEBHOOK_KEYS entry to configure (a secret: store it).
    """
    if not url.startswith("https://"):
        _fail("Cybersource delivers only to https URLs on port 443 or 8443")
    settings = _settings()
    organization = organization_id or settings.cybersource_merchant_id or ""
    key, subscription = asyncio.run(_subscribe(settings, organization, url))
    information = key.get("keyInformation", {})
    click.echo(f"webhookId: {subscription.get('webhookId')}")
    click.echo(f"keyId: {information.get('keyId')}")
    click.echo(f"LEDGER_WEBHOOK_KEYS={information.get('keyId')}:{information.get('key')}")
    expires = _key_expiry(information.get("expirationDate"))
    if expires is None:
        click.echo("expires: not stated by Cybersource (see its Key Management page)")
    else:
        click.echo(f"expires: {expires.isoformat()}")
        # The expiry alerts (and the gauge) read it from here.
        click.echo(f"LEDGER_WEBHOOK_KEY_EXPIRES_AT={expires.isoformat()}")


def _key_expiry(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _subscribe(
    settings: Settings, organization_id: str, url: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    async with _cybersource_client(settings) as client:
        key = await client.create_webhook_key(organization_id)
        subscription = await client.create_webhook_subscription(
            organization_id, url, list(EVENT_TYPE_BY_NOTIFICATION_TYPE)
        )
    return key, subscription


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=click.IntRange(1, 65535))
@click.option("--webhook-url", help="Where to deliver invoicing webhooks (e.g. the ledger's).")
@click.option(
    "--seconds-per-minute",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.001, 60),
    help="Compress the retry policy's minutes.",
)
@click.option("--drop", default=0.0, type=click.FloatRange(0, 1), help="Share never delivered.")
@click.option("--duplicate", default=0.0, type=click.FloatRange(0, 1), help="Share sent twice.")
@click.option("--delay", default=0.0, type=click.FloatRange(0, 1), help="Share delayed up to 5 s.")
@click.option(
    "--event-date-offset-min-seconds",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0.001, 3600),
    help="Least distance between a webhook's eventDate and its history entry's date.",
)
@click.option(
    "--event-date-offset-max-seconds",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0.001, 3600),
    help="Greatest distance between a webhook's eventDate and its history entry's date.",
)
@click.option(
    "--event-date-order",
    type=click.Choice(["before", "equal", "after"]),
    help="Always date webhooks this way against the history (default: at random).",
)
@click.option("--seed", type=int, help="Seed for delivery faults and event dates.")
@click.option(
    "--payment-amount-in-webhooks",
    is_flag=True,
    help="Add paymentAmount to paid and partial-payment webhooks (undocumented by Cybersource).",
)
@click.option(
    "--transaction-details-on-review",
    is_flag=True,
    help="Show the payment's transactionDetails on PENDING and REJECTED history entries.",
)
@click.option(
    "--payment-transaction-details",
    type=click.Choice(["amount", "transaction-id", "none"]),
    default="amount",
    show_default=True,
    help="What PAYMENT history entries show in transactionDetails: the transaction id and"
    " amount, the id only, or nothing (a payment request's transactionDetails overrides it).",
)
def sandbox(
    host: str,
    port: int,
    webhook_url: str | None,
    seconds_per_minute: float,
    drop: float,
    duplicate: float,
    delay: float,
    event_date_offset_min_seconds: float,
    event_date_offset_max_seconds: float,
    event_date_order: str | None,
    seed: int | None,
    payment_amount_in_webhooks: bool,
    transaction_details_on_review: bool,
    payment_transaction_details: str,
) -> None:
    """Serve a local Cybersource: invoicing REST API with HTTP Signature checks, and webhooks.

    It accepts the credentials in LEDGER_CYBERSOURCE_* and serves the organizations of
    LEDGER_CYBERSOURCE_ORGANIZATION_IDS (else the merchant's own), each with its own invoices;
    it signs webhooks with the first key of LEDGER_WEBHOOK_KEYS. Customers' doings are unsigned
    helpers, each taking ?organizationId= (default: the first organization): POST
    /sandbox/invoices/{id}/pay|pending|accept|reject|remind; inject 429/502 with POST
    /sandbox/faults; read the delivery log at GET /sandbox/deliveries. Signed GET
    /tss/v2/transactions/{id} answers the Transaction Details of the invoices' payments.
    """
    from service.sandbox.app import create_sandbox_app
    from service.sandbox.deliveries import (
        DeliveryFaults,
        RetryPolicy,
        WebhookDeliveries,
        WebhookTarget,
    )
    from service.sandbox.event_dates import EventDateOrder, EventTiming
    from service.sandbox.invoices import TransactionDetailsShown
    from service.sandbox.options import SandboxOptions

    settings = _settings()
    credentials = settings.cybersource_credentials()
    if credentials is None:
        _fail("set LEDGER_CYBERSOURCE_MERCHANT_ID, _KEY_ID and _SECRET_KEY for the sandbox")
    if event_date_offset_min_seconds > event_date_offset_max_seconds:
        _fail("--event-date-offset-min-seconds exceeds --event-date-offset-max-seconds")
    deliveries = None
    if webhook_url:
        if not settings.webhook_keys.keys:
            _fail("set LEDGER_WEBHOOK_KEYS: the sandbox signs its webhooks with the first key")
        key_id, key = next(iter(settings.webhook_keys.keys.items()))
        deliveries = WebhookDeliveries(
            WebhookTarget(webhook_url, key_id, key),
            RetryPolicy(seconds_per_minute=seconds_per_minute),
            DeliveryFaults(
                drop_share=drop,
                duplicate_share=duplicate,
                delay_share=delay,
                delay_seconds_max=5.0,
                seed=seed,
            ),
            timing=EventTiming(
                offset_seconds_min=event_date_offset_min_seconds,
                offset_seconds_max=event_date_offset_max_seconds,
                seed=seed,
                order=EventDateOrder(event_date_order) if event_date_order else None,
            ),
            include_payment_amount=payment_amount_in_webhooks,
        )
    app = create_sandbox_app(
        [credentials],
        organization_ids=settings.cybersource_organizations,
        deliveries=deliveries,
        options=SandboxOptions(
            transaction_details_on_review=transaction_details_on_review,
            payment_transaction_details=TransactionDetailsShown(payment_transaction_details),
        ),
    )
    uvicorn.run(app, host=host, port=port, log_config=None)


@main.command()
@click.option("--invoice", "stream_id", help="Only this invoice's events, in version order.")
@click.option(
    "--after",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Only after this position.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def events(stream_id: str | None, after: int, limit: int) -> None:
    """Print recorded events as JSON lines, in position order (the audit trail).

    Each line is the API's event document (camelCase, as ``/v1/invoices/{n}/events``) with the
    stream, version and idempotency key the store keeps beside it.
    """
    settings = _settings()
    for event in asyncio.run(_read_events(settings, stream_id, after, limit)):
        record = {
            "streamId": event.stream_id,
            "version": event.version,
            "schemaVersion": event.schema_version,
            "idempotencyKey": event.idempotency_key,
            **event_document(event).model_dump(mode="json"),
        }
        click.echo(json.dumps(record, ensure_ascii=False))


async def _read_events(
    settings: Settings, stream_id: str | None, after: int, limit: int
) -> list[RecordedEvent]:
    engine = create_engine(settings.database, pool_size=1)
    try:
        await require_schema_at_head(engine)
        store = event_store_for(engine)
        if stream_id is not None:
            return [e for e in await store.read_stream(stream_id) if e.position > after][:limit]
        return await store.read_after(after, limit)
    finally:
        await engine.dispose()


@main.command("sign-webhook")
@click.argument("body_file", type=click.File("rb"), default="-")
@click.option("--key-id", required=True, help="Which key of LEDGER_WEBHOOK_KEYS signs.")
@click.option(
    "--signed-content",
    type=click.Choice([SignedContent.RAW.value, SignedContent.PAYLOAD.value]),
    default=SignedContent.RAW.value,
    show_default=True,
    help="Sign the raw body, or JSON.stringify of its payload field.",
)
def sign_webhook(body_file: BinaryIO, key_id: str, signed_content: str) -> None:
    """Print a v-c-signature header value for BODY_FILE (default: standard input).

    The key is taken from LEDGER_WEBHOOK_KEYS, never from the command line, so it stays out
    of shell history. Useful to try the receiver with curl.
    """
    settings = _settings()
    key = settings.webhook_keys.keys.get(key_id)
    if key is None:
        _fail(f"LEDGER_WEBHOOK_KEYS has no key with keyId {key_id!r}")
    body = body_file.read()
    try:
        header = sign(key_id, key, body, int(time.time() * 1000), SignedContent(signed_content))
    except (ValueError, KeyError) as error:
        _fail(f"cannot sign this body: {error}")
    click.echo(header)


main.add_command(deliveries)

if __name__ == "__main__":
    main()
