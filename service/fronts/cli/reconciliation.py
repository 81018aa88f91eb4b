"""``reconcile``: the ledger beside Cybersource's own records."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import click
from prometheus_client import start_http_server
from tqdm import tqdm

from service.bootstrap import command_ledger, process_owner
from service.configured_keys import (
    MissingCredentials,
    merchant_credentials,
    reconciled_organizations,
)
from service.fronts.cli.common import (
    JSON_HELP,
    command_settings,
    fail,
    print_json,
)
from service.metrics import LedgerMetrics
from service.reconciler.outcomes import SweepSummary
from service.reconciler.sweep import SWEEP_STATUS_ORDER
from service.reconciler.worker import HANDOVER_SECONDS, LeaseTakenOver, command_lease
from service.settings import (
    Settings,
)
from service.workers.serving import stop_within_grace

# Errors a reconcile summary lists; the rest are counted (each was logged when it happened).
ERRORS_SHOWN_MAX = 20


@click.command()
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
        fail("give one of --invoice N (one or more), --sweep or --forever")
    if full and not sweep:
        fail("--full goes with --sweep")
    if metrics_port and not forever:
        fail("--metrics-port goes with --forever")
    if as_json and forever:
        fail("--json goes with --invoice or --sweep: --forever runs until stopped")
    if forever:
        if status or organizations:
            fail("--forever reconciles every configured organization: drop --status and"
                  " --organization")  # fmt: skip
        settings = command_settings()
        _organizations_to_reconcile(settings, (), for_invoices=False)
        metrics_address = (metrics_host, metrics_port) if metrics_port else None
        if not asyncio.run(_reconcile_forever(settings, metrics_address)):
            sys.exit(1)
        return
    if invoices and len(organizations) > 1:
        fail("with --invoice, give one --organization: invoice numbers are per organization")
    settings = command_settings()
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
        print_json(_summary_document(summary))
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
    if merchant_credentials(settings) is None:
        raise MissingCredentials()
    configured = reconciled_organizations(settings)
    unknown = [organization for organization in named if organization not in configured]
    if unknown:
        fail(
            f"--organization {unknown[0]} is not configured: the merchants act for"
            f" {', '.join(configured)}"
        )
    if for_invoices and not named and len(configured) > 1:
        fail(
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
    async with command_ledger(settings) as ledger, ledger.cybersource_client() as client:
        reconciler = ledger.reconciler(client)
        with tqdm(
            unit="invoice", desc="reconcile", total=len(invoices) or None, disable=None
        ) as bar:
            if sweep:
                statuses = (status,) if status else SWEEP_STATUS_ORDER
                # One sweeper at a time, this command or a serving reconciler: two would
                # together call Cybersource at twice the configured rate.
                async with command_lease(
                    ledger.read_models, process_owner("reconcile-command"), _say_handover
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


def _say_handover() -> None:
    click.echo(
        "another reconciler (a serving process?) held the lease: taken over; it stands by"
        f" within {HANDOVER_SECONDS:g} s, then this sweep starts",
        err=True,
    )


async def _reconcile_forever(settings: Settings, metrics_address: tuple[str, int] | None) -> bool:
    """The reconciler worker until SIGTERM or SIGINT; False if it overran the grace."""
    metrics = LedgerMetrics()
    metrics_server = None
    try:
        if metrics_address is not None:
            host, port = metrics_address
            try:
                metrics_server, _ = start_http_server(port, host, registry=metrics.registry)
            except OSError as error:
                fail(f"--metrics-port {port}: cannot listen on {host} ({error.strerror})")
        async with (
            command_ledger(settings, metrics=metrics) as ledger,
            ledger.reconciler_worker() as worker,
        ):
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
