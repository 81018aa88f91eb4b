"""``project`` and ``rebuild``: the read models, kept current or made anew."""

from __future__ import annotations

import asyncio
import os
import signal

import click
import structlog
from tqdm import tqdm

from service.bootstrap import (
    command_ledger,
    rebuild_engines,
)
from service.fronts.cli.common import (
    JSON_HELP,
    command_settings,
    export_metrics,
    fail,
    print_json,
)
from service.metrics import LedgerMetrics
from service.projections.rebuild import WORKERS_MAX, rebuild_invoices
from service.settings import (
    Settings,
)
from service.store.notifications import appended_events_signal
from service.workers.serving import projector_poll_seconds

log = structlog.get_logger("service.fronts.cli")


@click.command()
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
    settings = command_settings()
    metrics = LedgerMetrics()
    exporter = export_metrics(metrics, metrics_host, metrics_port) if metrics_port else None
    try:
        position = asyncio.run(_project(settings, once, metrics))
    except KeyboardInterrupt:
        return
    finally:
        if exporter is not None:
            exporter.shutdown()
    if as_json:
        print_json({"position": position})
    else:
        click.echo(f"projection at position {position}", err=True)


async def _project(settings: Settings, once: bool, metrics: LedgerMetrics) -> int:
    async with command_ledger(settings, pool_size=2, metrics=metrics) as ledger:
        read_models = ledger.read_models
        projector = ledger.projector()
        if once:
            if not await projector.take_lease():
                fail("another projector holds the lease; it is keeping the projection current")
            try:
                await projector.catch_up()
            finally:
                await projector.release_lease()
            return await read_models.checkpoint()
        stop, wake = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        async with appended_events_signal(ledger.engine, wake):
            metrics.projector_up.set(1)
            try:
                await projector.run(stop, wake, projector_poll_seconds(ledger))
            except Exception:
                metrics.projector_errors.inc()
                raise
            finally:
                metrics.projector_up.set(0)
        return await read_models.checkpoint()


@click.command()
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
    settings = command_settings()
    position = asyncio.run(_rebuild(settings, workers))
    if as_json:
        print_json({"position": position})
    else:
        click.echo(f"read models rebuilt up to position {position}", err=True)


async def _rebuild(settings: Settings, workers: int) -> int:
    async with command_ledger(settings, pool_size=2) as ledger:
        store = ledger.event_store
        # disable=None: a bar only on a terminal, never lines of it in a log.
        with tqdm(
            total=await store.last_position(), unit="event", desc="rebuild", disable=None
        ) as bar:
            position = await rebuild_invoices(
                store, ledger.read_models, on_progress=bar.update, workers=workers,
                engines=rebuild_engines(settings),
            )  # fmt: skip
            # The bar counts events against the last position; positions a rolled-back
            # append reserved hold no event, so the count can end short of it: it is done.
            bar.update(max(0, (bar.total or 0) - bar.n))
            return position
