"""Read-model benchmark on PostgreSQL: rebuild, projection lag, invoice reads, reports.

``python -m bench.read_models [--invoices 1000000]`` (about 1.4 events per invoice):

1. rebuild throughput and peak memory at a quarter of the invoices and at all of them
   (memory should stay flat), against a bare read of every event in the same order;
2. what one more fact on a long-lived invoice costs the projector, folded onto the stream's
   snapshot and, in the same run, with the snapshots dropped (the stream read whole);
3. ``GET /v1/invoices/{n}``, each report and the invoice list with filters, sequentially over
   HTTP, against ``GET /healthz``;
4. projection lag (append to read-model position) while notifications arrive at 500/s.

``python -m bench.read_models --projector-only [--projector-invoices 20000]`` measures only the
incremental projector's own cost: catching up a backlog of new invoices (each stream new to
it), then a backlog of one more fact on each of them (each folded onto its snapshot), in
events/s and this process's CPU microseconds per event.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import delete

from bench.generate import copy_events, generate, reminder_events
from bench.harness import (
    PATH,
    RESULTS_DIRECTORY,
    Target,
    free_port,
    migrated_database,
    print_targets,
    server,
    signed_delivery,
)
from bench.load import run_paced_load
from service.bootstrap import command_ledger
from service.domain.events import RecordedEvent
from service.projections.projector import InvoiceProjector
from service.settings import load_settings

# Measured internals of the store, which service/bootstrap.py rightly does not offer: the
# events a projector reads (CountingEventStore subclasses the SQL event store), and the fold
# snapshots table, emptied to measure a projector reading whole streams.
from service.store.events.base import SqlEventStore
from service.store.schema import invoice_fold_snapshots

REPORTS = {
    "outstanding": ("/v1/reports/outstanding", {}),
    "outstanding asOf": ("/v1/reports/outstanding", {"asOf": "2025-06-30T00:00:00Z"}),
    "outstanding asOf midday": ("/v1/reports/outstanding", {"asOf": "2025-03-14T13:30:00Z"}),
    "aging": ("/v1/reports/aging", {"asOf": "2025-09-30"}),
    "aging asOf early": ("/v1/reports/aging", {"asOf": "2025-03-31"}),
    "aging timeZone": (
        "/v1/reports/aging",
        {"asOf": "2025-09-30", "timeZone": "America/Los_Angeles"},
    ),
    "collections": (
        "/v1/reports/collections",
        {"from": "2025-01-01", "to": "2025-12-31", "interval": "month"},
    ),
    # Days in another zone are not UTC days: summed from the collections themselves.
    "collections timeZone": (
        "/v1/reports/collections",
        {
            "from": "2025-01-01",
            "to": "2025-12-31",
            "interval": "month",
            "timeZone": "America/Los_Angeles",
        },
    ),
    "status": ("/v1/reports/status", {}),
    # The invoice list with filters, each of which has an index leading with it.
    "list currency dueAfter": ("/v1/invoices", {"currency": "GBP", "dueAfter": "2025-06-01"}),
    "list customerName": ("/v1/invoices", {"customerName": "Customer 4321"}),
    "list status": ("/v1/invoices", {"status": "PARTIAL"}),
}


P95_MS_MAX_LIST = 20.0
P95_MS_MAX_REPORT = 100.0


def rebuild(database_url: str, workers: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.rebuild_run", database_url, "--workers", str(workers)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(output.stdout)
    result["events_per_second"] = result["events"] / result["rebuild_seconds"]
    result["read_events_per_second"] = result["events"] / result["read_seconds"]
    print(f"rebuild: {result}", flush=True)
    return result


async def long_stream_cost(
    database_url: str, streams: int, events_per_stream: int
) -> dict[str, float]:
    """Project one new reminder on each of ``streams`` long-lived invoices: once onto their
    snapshots, once with the snapshots dropped, as every batch did before there were any."""
    records = [
        record
        for number in range(streams)
        for record in reminder_events(number, 1, events_per_stream)
    ]
    await copy_events(database_url, records)
    async with command_ledger(load_settings(database_url=database_url), pool_size=2) as ledger:
        # The ledger's engine and read models, with an event store that counts what it reads.
        store = CountingEventStore(ledger.engine)
        projector = InvoiceProjector(store, ledger.read_models, owner="bench-long")
        await projector.catch_up()  # the generated streams, then their snapshots
        result: dict[str, float] = {"streams": streams, "events_per_stream": events_per_stream}
        for name, version in (("with_snapshots", 1), ("without_snapshots", 2)):
            if name == "without_snapshots":
                async with ledger.engine.begin() as connection:
                    await connection.execute(delete(invoice_fold_snapshots))
            new = [
                record
                for number in range(streams)
                for record in reminder_events(number, events_per_stream + version, 1)
            ]
            await copy_events(database_url, new)
            store.events_read = 0
            started = time.perf_counter()
            await projector.catch_up()
            elapsed = time.perf_counter() - started
            result[f"{name}_ms_per_event"] = elapsed * 1000 / streams
            result[f"{name}_events_read"] = store.events_read
            print(f"long streams, {name}: {result}", flush=True)
        await projector.release_lease()
        return result


async def projector_cost(
    database_url: str, first: int, invoices: int
) -> dict[str, dict[str, float]]:
    """The incremental projector catching up two backlogs, timed by the clock and by this
    process's CPU (PostgreSQL's CPU is not in it): ``invoices`` new invoices numbered from
    ``first``, then one more fact on each of them."""
    await generate(database_url, first, invoices)
    async with command_ledger(load_settings(database_url=database_url), pool_size=2) as ledger:
        projector = InvoiceProjector(
            ledger.event_store, ledger.read_models, owner="bench-projector"
        )
        result = {"new_streams": await _timed_catch_up(projector)}
        print(f"projector, new streams: {result['new_streams']}", flush=True)
        await copy_events(database_url, await _one_more_fact_each(database_url, first))
        result["known_streams"] = await _timed_catch_up(projector)
        print(f"projector, one more fact on known streams: {result['known_streams']}", flush=True)
        await projector.release_lease()
        return result


async def _timed_catch_up(projector: InvoiceProjector) -> dict[str, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    events = await projector.catch_up()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds,
        "cpu_us_per_event": cpu_seconds * 1e6 / events,
    }


async def _one_more_fact_each(database_url: str, first: int) -> list[tuple[Any, ...]]:
    """A reminder on each stream from ``first`` on, interleaved across streams as live traffic
    arrives."""
    connection = await asyncpg.connect(database_url)
    try:
        streams = await connection.fetch(
            "SELECT stream_id, max(version) AS version, max(occurred_at) AS occurred_at"
            " FROM events WHERE stream_id >= $1 AND stream_id LIKE 'BENCH-%'"
            " GROUP BY stream_id",
            f"BENCH-{first:08d}",
        )
    finally:
        await connection.close()
    records = []
    for row in random.Random(7).sample(list(streams), len(streams)):
        invoice, version = row["stream_id"], row["version"] + 1
        occurred_at = row["occurred_at"] + timedelta(days=1)
        document = json.dumps({"invoiceNumber": invoice})
        records.append((
            invoice, version, "InvoiceReminderSent", 1, occurred_at, occurred_at, "webhook",
            f"bench:{invoice}:{version}", hashlib.sha256(document.encode()).hexdigest(), document,
        ))  # fmt: skip
    return records


class CountingEventStore(SqlEventStore):
    events_read = 0

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]:
        events = await super().read_after(position, limit)
        self.events_read += len(events)
        return events

    async def read_streams(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, list[RecordedEvent]]:
        streams = await super().read_streams(stream_ids, up_to_position)
        self.events_read += sum(len(events) for events in streams.values())
        return streams


def latencies_ms(
    client: httpx.Client, path: str, params: dict[str, str], times: int
) -> dict[str, float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * len(samples)) - 1]}


def invoice_reads(client: httpx.Client, invoices: int, times: int) -> dict[str, float]:
    samples = []
    for _ in range(times):
        number = f"BENCH-{random.randrange(invoices):08d}"
        started = time.perf_counter()
        client.get(f"/v1/invoices/{number}").raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * len(samples)) - 1]}


async def projection_lag(
    database_url: str, port: int, rate: int, seconds: float
) -> dict[str, float]:
    """Send at a steady rate; sample when each position is appended and when it is projected."""
    connection = await asyncpg.connect(database_url)
    appended_at: dict[int, float] = {}
    projected_at: dict[int, float] = {}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            now = time.perf_counter()
            head = await connection.fetchval("SELECT coalesce(max(position), 0) FROM events")
            checkpoint = await connection.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = 'invoices'"
            )
            appended_at.setdefault(head, now)
            projected_at.setdefault(checkpoint, now)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    load = await run_paced_load(
        "127.0.0.1", port, PATH, signed_delivery, rate_per_second=rate, duration_seconds=seconds
    )
    await asyncio.sleep(2)
    stop.set()
    await sampler
    await connection.close()
    lags = []
    for position, at in appended_at.items():
        done = min((t for p, t in projected_at.items() if p >= position), default=None)
        if done is not None and position > min(appended_at):
            lags.append(max(0.0, done - at))
    lags.sort()
    return {
        "rate_per_second": load.throughput,
        "ack_p99_ms": load.percentile_ms(0.99),
        "non_2xx": sum(n for status, n in load.statuses.items() if status >= 300),
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": lags[int(0.99 * len(lags)) - 1] * 1000,
        "samples": len(lags),
    }


async def analyze(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000, help="invoice reads")
    parser.add_argument("--report-requests", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rebuild")
    parser.add_argument("--long-streams", type=int, default=50)
    parser.add_argument("--long-stream-events", type=int, default=2000)
    parser.add_argument("--projector-only", action="store_true")
    parser.add_argument("--projector-invoices", type=int, default=20_000)
    arguments = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
    }
    if arguments.projector_only:
        with migrated_database("ledger_bench_projector") as (database_url, _):
            report["projector"] = asyncio.run(
                projector_cost(database_url, 0, arguments.projector_invoices)
            )
        print(json.dumps(report, indent=2))
        print_targets(targets(report))
        return
    with migrated_database("ledger_bench_read") as (database_url, environment):
        quarter = arguments.invoices // 4
        asyncio.run(generate(database_url, 0, quarter))
        report["rebuild_quarter"] = rebuild(database_url, arguments.workers)
        asyncio.run(generate(database_url, quarter, arguments.invoices - quarter))
        report["rebuild_full"] = rebuild(database_url, arguments.workers)
        report["rebuild_full_one_process"] = rebuild(database_url, 1)
        report["long_streams"] = asyncio.run(
            long_stream_cost(database_url, arguments.long_streams, arguments.long_stream_events)
        )
        report["projector"] = asyncio.run(
            projector_cost(database_url, arguments.invoices, arguments.projector_invoices)
        )

        # This machine's PostgreSQL runs without autovacuum: analyse as production's would.
        asyncio.run(analyze(database_url))
        port = free_port()
        command = [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)]
        with (
            server(command, port, environment),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
        ):
            report["healthz"] = latencies_ms(client, "/healthz", {}, arguments.requests)
            report["get_invoice"] = invoice_reads(client, arguments.invoices, arguments.requests)
            print(f"healthz {report['healthz']}  get invoice {report['get_invoice']}", flush=True)
            report["reports"] = {}
            for name, (path, params) in REPORTS.items():
                timings = latencies_ms(client, path, params, arguments.report_requests)
                report["reports"][name] = timings
                print(f"report {name}: {report['reports'][name]}", flush=True)
            report["projection_lag"] = asyncio.run(projection_lag(database_url, port, 500, 20))
            print(f"projection lag: {report['projection_lag']}", flush=True)

    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    (RESULTS_DIRECTORY / f"read-models-{report['date']}.json").write_text(
        json.dumps(report, indent=2)
    )
    print(json.dumps(report, indent=2))
    print_targets(targets(report))


def targets(report: dict[str, Any]) -> list[Target]:
    """The read side's targets, for whichever parts of the benchmark ran."""
    found: list[Target] = []
    for name, run in report.get("projector", {}).items():
        found.append(
            Target(
                f"projector, {name}, CPU per event",
                run["cpu_us_per_event"],
                "us",
                100,
                at_least=False,
                baseline=f"{run['events_per_second']:,.0f} ev/s",
            )
        )
    if "rebuild_full" not in report:
        return found
    quarter, full = report["rebuild_quarter"], report["rebuild_full"]
    found.append(
        Target(
            f"rebuild, {full['events']:,} events",
            full["events_per_second"],
            "ev/s",
            40_000,
            at_least=True,
            baseline=f"bare read {full['read_events_per_second']:,.0f} ev/s",
        )
    )
    peaks = [run[key] for run in (quarter, full) for key in ("peak_rss_mb", "worker_peak_rss_mb")]
    found.append(
        Target(
            "rebuild, peak memory per process",
            max(peaks),
            "MB",
            300,
            at_least=False,
            baseline=f"a quarter of the events: {max(peaks[:2]):.0f} MB",
        )
    )
    healthz = report["healthz"]["p95_ms"]
    found.append(
        Target(
            "GET /v1/invoices/{n}, p95",
            report["get_invoice"]["p95_ms"],
            "ms",
            5,
            at_least=False,
            baseline=f"/healthz p95 {healthz:.2f} ms",
        )
    )
    for name, timings in report["reports"].items():
        limit = P95_MS_MAX_LIST if name.startswith("list") else P95_MS_MAX_REPORT
        if name != "status":  # counted from a few rows, no target
            found.append(
                Target(
                    f"{name}, p95",
                    timings["p95_ms"],
                    "ms",
                    limit,
                    at_least=False,
                    baseline=f"/healthz p95 {healthz:.2f} ms",
                )
            )
    lag = report["projection_lag"]
    found.append(
        Target(
            "projection lag p99 at 500/s",
            lag["lag_p99_ms"],
            "ms",
            1000,
            at_least=False,
            baseline=f"acknowledgements p99 {lag['ack_p99_ms']:.0f} ms",
        )
    )
    return found


if __name__ == "__main__":
    main()
