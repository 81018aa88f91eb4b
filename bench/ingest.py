"""Webhook ingestion benchmark on PostgreSQL: the receiver against a one-INSERT baseline and
the machine's physical limits, in one run on one throwaway database.

Measured, in alternating rounds so that a shared, noisy machine affects all alike:

- ``baseline``: a bare Starlette endpoint doing one INSERT per request (bench/baseline_app.py);
- ``alone``: ``invoice-ledger serve`` with no projector running on this machine
  (``LEDGER_PROJECTOR_ENABLED=false``, as when the projector runs on another host);
- ``projector``: ``invoice-ledger serve`` with the projector in the same process;
- ``bare``: the baseline process answering without touching the database (the HTTP stack).

Then the projection lag while notifications arrive at a constant 80% of the ``projector``
rate, PostgreSQL's own limit for the same commits (pgbench: one webhook-sized row per
transaction, and batches), and an exactly-once check of everything the service acknowledged.
The load generator is wrk (each request a distinct, pre-signed notification); the paced
load of the lag phase is the Python generator of bench/load.py.

Usage: ``make bench`` or ``python -m bench.ingest --duration 15 --rounds 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness import (
    PATH,
    RESULTS_DIRECTORY,
    free_port,
    migrated_database,
    server,
    signed_delivery,
)
from bench.load import LoadResult, run_paced_load
from bench.wrk import (
    LUA_SCRIPT,
    ExactlyOnce,
    WrkResult,
    parse_pgbench_tps,
    require_wrk,
    run_wrk,
    write_deliveries,
)

EVENT_TYPE = "invoicing.customer.invoice.partial-payment"
# Signatures are made before each round; the service accepts them for this long.
TOLERANCE_SECONDS = 3600
SERVICE_TARGETS = ("alone", "projector")
TARGETS = ("baseline", "alone", "projector", "bare")
TARGET_RATIOS = {"alone": 1.1, "projector": 0.7}
TARGET_P99_MS = {"alone": 25.0}
TARGET_LAG_P99_MS = 1000.0


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time consumed so far by these processes (Linux /proc)."""
    return sum(process_cpu(pid) or 0.0 for pid in pids)


def process_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # a process that has exited
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU so far of PostgreSQL's shared processes and of the backends of ``database`` (not
    of the other databases on a shared server), by process id."""
    snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if not title.startswith("postgres"):
            continue
        words = title.split()
        is_backend = len(words) >= 4 and ("(" in words[3] or words[3] == "[local]")
        if is_backend and words[2] != database:
            continue
        if (seconds := process_cpu(int(entry.name))) is not None:
            snapshot[int(entry.name)] = seconds
    return snapshot


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@dataclass
class Round:
    target: str
    result: WrkResult
    server_cpu_microseconds_per_request: float
    postgres_cpu_microseconds_per_request: float

    def __str__(self) -> str:
        return (
            f"{self.target:9s}: {self.result.throughput:7.0f}/s"
            f"  p50 {self.result.p50_ms:6.1f} ms"
            f"  p99 {self.result.p99_ms:6.1f} ms"
            f"  CPU per request: server {self.server_cpu_microseconds_per_request:4.0f} us,"
            f" PostgreSQL {self.postgres_cpu_microseconds_per_request:4.0f} us"
            f"  200s {self.result.acknowledged}, other {self.result.other}"
            f", socket errors {self.result.socket_errors}"
            + ("  (deliveries ran out and were resent)" if self.result.wrapped else "")
        )


class Bench:
    def __init__(self, arguments: argparse.Namespace, database_url: str, directory: Path):
        self.arguments = arguments
        self.database_url = database_url
        self.database = database_url.rsplit("/", 1)[1]
        self.directory = directory
        self.script = directory / "deliveries.lua"
        self.script.write_text(LUA_SCRIPT)
        self.files = 0
        self.acknowledged = 0
        self.sent = 0
        self.timed_runs = 0

    def deliveries(self, seconds: float) -> Path:
        """A new file of distinct notifications, signed now, enough for ``seconds``."""
        self.files += 1
        path = self.directory / f"deliveries-{self.files}.tsv"
        write_deliveries(path, int(seconds * self.arguments.max_rate) + 1000, signed_delivery)
        return path

    def wrk(self, port: int, path: str, deliveries: Path | None, seconds: float) -> WrkResult:
        return run_wrk(
            f"http://127.0.0.1:{port}{path}",
            self.script,
            deliveries=deliveries,
            event_type=EVENT_TYPE,
            threads=self.arguments.threads,
            connections=self.arguments.connections,
            duration_seconds=seconds,
        )

    def measure(self, target: str, port: int, pid: int, path: str, service: bool) -> Round:
        warmup_file = self.deliveries(self.arguments.warmup) if service else None
        measured_file = self.deliveries(self.arguments.duration) if service else None
        warmup = self.wrk(port, path, warmup_file, self.arguments.warmup)
        server_before, postgres_before = cpu_seconds([pid]), postgres_cpu(self.database)
        result = self.wrk(port, path, measured_file, self.arguments.duration)
        server_after, postgres_after = cpu_seconds([pid]), postgres_cpu(self.database)
        if service:
            self.acknowledged += warmup.acknowledged + result.acknowledged
            self.sent += warmup.sent + result.sent
            self.timed_runs += 2
        requests = max(1, result.requests)
        return Round(
            target,
            result,
            (server_after - server_before) * 1e6 / requests,
            cpu_between(postgres_before, postgres_after) * 1e6 / requests,
        )


async def execute(database_url: str, statement: str) -> Any:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchrow(statement)
    finally:
        await connection.close()


def analyze(database_url: str) -> None:
    asyncio.run(execute(database_url, "ANALYZE"))


async def wait_until_projected(database_url: str, timeout_seconds: float = 300.0) -> None:
    """Until the projector's checkpoint reaches the head of the log (before measuring)."""
    connection = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            head = await connection.fetchval("SELECT coalesce(max(position), 0) FROM events")
            checkpoint = await connection.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = 'invoices'"
            )
            if checkpoint is not None and checkpoint >= head:
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"the projector did not catch up within {timeout_seconds:.0f} s")
    finally:
        await connection.close()


async def projection_lag(
    database_url: str, port: int, rate: float, seconds: float
) -> tuple[LoadResult, dict[str, float]]:
    """Send at a constant rate; sample when each position is appended and when it is projected
    (as bench/read_models.py does): the lag from acknowledgement to the checkpoint."""
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
    return load, {
        "offered_rate_per_second": rate,
        "achieved_rate_per_second": load.throughput,
        "ack_p50_ms": load.percentile_ms(0.50),
        "ack_p99_ms": load.percentile_ms(0.99),
        "non_2xx": sum(n for status, n in load.statuses.items() if status != 200),
        "lag_p50_ms": statistics.median(lags) * 1000 if lags else float("nan"),
        "lag_p99_ms": lags[max(0, int(0.99 * len(lags)) - 1)] * 1000 if lags else float("nan"),
        "samples": len(lags),
    }


async def exactly_once_counts(database_url: str) -> tuple[int, int, int]:
    connection = await asyncpg.connect(database_url)
    try:
        events = int(await connection.fetchval("SELECT count(*) FROM events"))
        inbox = await connection.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT notification_id) AS distinct_ids FROM inbox"
        )
        return int(inbox["rows"]), int(inbox["distinct_ids"]), events
    finally:
        await connection.close()


PGBENCH_TABLE = (
    "CREATE TABLE IF NOT EXISTS pgbench_deliveries (id bigserial PRIMARY KEY,"
    " received_at timestamptz NOT NULL DEFAULT now(), body bytea NOT NULL)"
)
# About the size of a signed notification's body (600-700 bytes), different every row.
PGBENCH_ROW = "convert_to(repeat(md5(random()::text), 20), 'UTF8')"


def pgbench_limit(
    database_url: str, directory: Path, rows_per_transaction: int, arguments: argparse.Namespace
) -> dict[str, float]:
    """PostgreSQL's own rate for webhook-sized INSERTs, ``rows_per_transaction`` per commit."""
    script = directory / f"insert-{rows_per_transaction}.sql"
    if rows_per_transaction == 1:
        script.write_text(f"INSERT INTO pgbench_deliveries (body) VALUES ({PGBENCH_ROW});\n")
    else:
        script.write_text(
            f"INSERT INTO pgbench_deliveries (body) SELECT {PGBENCH_ROW}"
            f" FROM generate_series(1, {rows_per_transaction});\n"
        )
    output = subprocess.run(
        [
            "pgbench", "-n", "-M", "prepared", "-f", str(script),
            "-c", str(arguments.pgbench_clients), "-j", str(arguments.threads),
            "-T", str(round(arguments.pgbench_duration)), database_url,
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    transactions = parse_pgbench_tps(output.stdout)
    result = {
        "rows_per_transaction": rows_per_transaction,
        "transactions_per_second": transactions,
        "rows_per_second": transactions * rows_per_transaction,
    }
    print(f"pgbench, {rows_per_transaction} row(s) per transaction: {result}", flush=True)
    return result


def summarise(rounds: list[Round], target: str) -> dict[str, float]:
    mine = [r for r in rounds if r.target == target]
    return {
        "throughput_per_second": statistics.median(r.result.throughput for r in mine),
        "p50_ms": statistics.median(r.result.p50_ms for r in mine),
        "p99_ms": statistics.median(r.result.p99_ms for r in mine),
        "requests": sum(r.result.requests for r in mine),
        "not_200": sum(r.result.other + r.result.socket_errors for r in mine),
        "server_cpu_us_per_request": statistics.median(
            r.server_cpu_microseconds_per_request for r in mine
        ),
        "postgres_cpu_us_per_request": statistics.median(
            r.postgres_cpu_microseconds_per_request for r in mine
        ),
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per target, alternating")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--max-rate", type=float, default=9000, help="deliveries signed per second of a round"
    )
    parser.add_argument("--lag-duration", type=float, default=20.0)
    parser.add_argument("--pgbench-duration", type=float, default=10.0)
    parser.add_argument("--pgbench-clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32, help="rows per batched pgbench commit")
    return parser.parse_args()


def require_load_tools() -> None:
    """wrk and pgbench, or exit 2 naming the package."""
    require_wrk()
    if shutil.which("pgbench") is None:
        print("pgbench is not installed: install postgresql-client", file=sys.stderr)
        raise SystemExit(2)


def run_description(arguments: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load_generator": f"wrk -t{arguments.threads} -c{arguments.connections}",
        "duration_seconds": arguments.duration,
        "warmup_seconds": arguments.warmup,
        "rounds": arguments.rounds,
        "webhook_tolerance_seconds": TOLERANCE_SECONDS,
    }


def service_command(port: int) -> list[str]:
    return [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)]


def baseline_command(port: int, database_url: str) -> list[str]:
    return [
        sys.executable, "-m", "bench.baseline_app", "--port", str(port), "--dsn", database_url,
    ]  # fmt: skip


def alternating_rounds(
    bench: Bench, environment: dict[str, str], service_port: int, baseline_port: int
) -> list[Round]:
    """Scenarios 1 to 3 and the HTTP stack: each target once per round, in turn."""
    rounds: list[Round] = []
    baseline = baseline_command(baseline_port, bench.database_url)
    with server(baseline, baseline_port, {}) as baseline_process:
        for round_number in range(1, bench.arguments.rounds + 1):
            for target in TARGETS:
                if target in SERVICE_TARGETS:
                    measured = service_round(bench, environment, service_port, target)
                else:
                    path = PATH if target == "baseline" else "/bare"
                    measured = bench.measure(
                        target, baseline_port, baseline_process.pid, path, False
                    )
                rounds.append(measured)
                print(f"round {round_number} {measured}", flush=True)
                analyze(bench.database_url)
    return rounds


def service_round(bench: Bench, environment: dict[str, str], port: int, target: str) -> Round:
    """One round of ``invoice-ledger serve``, with or without its projector."""
    projector = "true" if target == "projector" else "false"
    with server(
        service_command(port), port, {**environment, "LEDGER_PROJECTOR_ENABLED": projector}
    ) as service:
        if target == "projector":
            asyncio.run(wait_until_projected(bench.database_url))
        return bench.measure(target, port, service.pid, PATH, True)


def projection_lag_scenario(
    bench: Bench, environment: dict[str, str], port: int, rate: float
) -> dict[str, float]:
    """Scenario 4: the lag from append to projection at a constant rate."""
    with server(service_command(port), port, environment):
        asyncio.run(wait_until_projected(bench.database_url))
        load, lag = asyncio.run(
            projection_lag(bench.database_url, port, rate, bench.arguments.lag_duration)
        )
    bench.acknowledged += load.statuses.get(200, 0)
    bench.sent += len(load.latencies_seconds)
    print(f"projection lag: {lag}", flush=True)
    return lag


def exactly_once_check(bench: Bench) -> ExactlyOnce:
    """Everything acknowledged stored once, nothing stored that was not sent."""
    inbox_rows, distinct, events = asyncio.run(exactly_once_counts(bench.database_url))
    check = ExactlyOnce(
        bench.acknowledged,
        bench.sent,
        inbox_rows,
        distinct,
        events,
        max_unanswered=bench.timed_runs * bench.arguments.connections,
    )
    print(check.describe(), flush=True)
    return check


def postgres_limits(bench: Bench, summaries: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Scenario 5: the HTTP stack's rate (measured in the rounds) and pgbench's."""
    database_url, arguments = bench.database_url, bench.arguments
    analyze(database_url)
    asyncio.run(execute(database_url, PGBENCH_TABLE))
    return {
        "http_stack_per_second": summaries["bare"]["throughput_per_second"],
        "postgres_single": pgbench_limit(database_url, bench.directory, 1, arguments),
        "postgres_batched": pgbench_limit(
            database_url, bench.directory, arguments.batch, arguments
        ),
    }


def shares_of_limits(
    summaries: dict[str, dict[str, float]], limits: dict[str, Any]
) -> dict[str, dict[str, float]]:
    baseline_rate = summaries["baseline"]["throughput_per_second"]
    single = limits["postgres_single"]["rows_per_second"]
    batched = limits["postgres_batched"]["rows_per_second"]
    return {
        target: {
            "of_baseline": summaries[target]["throughput_per_second"] / baseline_rate,
            "of_http_stack": summaries[target]["throughput_per_second"]
            / limits["http_stack_per_second"],
            "of_postgres_single": summaries[target]["throughput_per_second"] / single,
            "of_postgres_batched": summaries[target]["throughput_per_second"] / batched,
        }
        for target in ("baseline", "alone", "projector")
    }


def targets_met(
    summaries: dict[str, dict[str, float]],
    fractions: dict[str, dict[str, float]],
    lag: dict[str, float],
    check: ExactlyOnce,
) -> dict[str, bool]:
    return {
        "alone_ratio": fractions["alone"]["of_baseline"] >= TARGET_RATIOS["alone"],
        "alone_p99": summaries["alone"]["p99_ms"] <= TARGET_P99_MS["alone"],
        "projector_ratio": fractions["projector"]["of_baseline"] >= TARGET_RATIOS["projector"],
        "lag_p99": lag["lag_p99_ms"] <= TARGET_LAG_P99_MS,
        "exactly_once": check.holds,
    }


def write_report(
    report: dict[str, Any],
    rounds: list[Round],
    summaries: dict[str, dict[str, float]],
    lag: dict[str, float],
    limits: dict[str, Any],
    fractions: dict[str, dict[str, float]],
    check: ExactlyOnce,
    targets: dict[str, bool],
) -> None:
    """bench/results/ingest-<date>.json, and the same JSON printed."""
    exactly_once: dict[str, Any] = {**asdict(check), "holds": check.holds}
    report.update(
        {
            **summaries,
            "projection_lag": lag,
            "limits": limits,
            "fractions": fractions,
            "exactly_once": exactly_once,
            "targets_met": targets,
            "rounds_measured": [
                {"target": r.target, **asdict(r.result), "throughput": r.result.throughput,
                 "server_cpu_us_per_request": r.server_cpu_microseconds_per_request,
                 "postgres_cpu_us_per_request": r.postgres_cpu_microseconds_per_request}
                for r in rounds
            ],
        }
    )  # fmt: skip
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    (RESULTS_DIRECTORY / f"ingest-{report['date']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def print_table(
    summaries: dict[str, dict[str, float]],
    fractions: dict[str, dict[str, float]],
    limits: dict[str, Any],
    batch: int,
) -> None:
    names = {
        "baseline": "baseline (Starlette + 1 INSERT)",
        "alone": "service, no projector",
        "projector": "service + projector",
        "bare": "HTTP stack (no database)",
    }
    print(
        "\n| target | req/s | p50 ms | p99 ms | server CPU us/req | PostgreSQL CPU us/req"
        " | x baseline | of HTTP stack | of PG 1 row/commit | of PG batched |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for target in TARGETS:
        s = summaries[target]
        f = fractions.get(target)
        shares = (
            f"{f['of_baseline']:.2f} | {f['of_http_stack']:.0%} | {f['of_postgres_single']:.0%}"
            f" | {f['of_postgres_batched']:.0%}"
            if f
            else "- | - | - | -"
        )
        print(
            f"| {names[target]} | {s['throughput_per_second']:.0f} | {s['p50_ms']:.1f}"
            f" | {s['p99_ms']:.1f} | {s['server_cpu_us_per_request']:.0f}"
            f" | {s['postgres_cpu_us_per_request']:.0f} | {shares} |"
        )
    single = limits["postgres_single"]["rows_per_second"]
    batched = limits["postgres_batched"]["rows_per_second"]
    print(
        f"| PostgreSQL, 1 row per commit (pgbench) | {single:.0f} rows/s | | | | | | | | |\n"
        f"| PostgreSQL, {batch} rows per commit (pgbench) | {batched:.0f} rows/s"
        " | | | | | | | | |"
    )


def print_verdicts(
    summaries: dict[str, dict[str, float]],
    fractions: dict[str, dict[str, float]],
    lag: dict[str, float],
    targets: dict[str, bool],
    check: ExactlyOnce,
) -> None:
    print(
        f"\nservice, no projector: {fractions['alone']['of_baseline']:.2f}x baseline"
        f" (target ≥ {TARGET_RATIOS['alone']}) {verdict(targets['alone_ratio'])};"
        f" p99 {summaries['alone']['p99_ms']:.1f} ms (target ≤ {TARGET_P99_MS['alone']:.0f})"
        f" {verdict(targets['alone_p99'])}\n"
        f"service + projector: {fractions['projector']['of_baseline']:.2f}x baseline"
        f" (target ≥ {TARGET_RATIOS['projector']}) {verdict(targets['projector_ratio'])}\n"
        f"projection lag at {lag['offered_rate_per_second']:.0f}/s offered"
        f" ({lag['achieved_rate_per_second']:.0f}/s achieved): p50 {lag['lag_p50_ms']:.0f} ms,"
        f" p99 {lag['lag_p99_ms']:.0f} ms (target ≤ {TARGET_LAG_P99_MS:.0f})"
        f" {verdict(targets['lag_p99'])}\n"
        f"{check.describe()}"
    )


def fail_on_problems(
    summaries: dict[str, dict[str, float]], lag: dict[str, float], check: ExactlyOnce
) -> None:
    if not check.holds:
        raise SystemExit("exactly-once check failed: see above")
    if any(summaries[t]["not_200"] for t in TARGETS) or lag["non_2xx"]:
        raise SystemExit("some requests were not acknowledged with 200: see the rounds above")


def main() -> None:
    arguments = parse_arguments()
    require_load_tools()
    service_port, baseline_port = free_port(), free_port()
    report = run_description(arguments)
    with (
        migrated_database("ledger_bench") as (database_url, environment),
        tempfile.TemporaryDirectory(prefix="ledger-bench-") as scratch,
    ):
        bench = Bench(arguments, database_url, Path(scratch))
        environment = {
            **environment,
            "LEDGER_WEBHOOK_TOLERANCE_SECONDS": str(TOLERANCE_SECONDS),
            # The load generator is one client standing for Cybersource's many deliveries: its
            # share of requests in flight (20 by default) must cover its connections, or the
            # excess is answered 503 and the rounds measure refusals.
            "LEDGER_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(max(bench.arguments.connections, 20)),
        }
        rounds = alternating_rounds(bench, environment, service_port, baseline_port)
        summaries = {target: summarise(rounds, target) for target in TARGETS}
        lag_rate = 0.8 * summaries["projector"]["throughput_per_second"]
        lag = projection_lag_scenario(bench, environment, service_port, lag_rate)
        check = exactly_once_check(bench)
        limits = postgres_limits(bench, summaries)

    fractions = shares_of_limits(summaries, limits)
    targets = targets_met(summaries, fractions, lag, check)
    write_report(report, rounds, summaries, lag, limits, fractions, check, targets)
    print_table(summaries, fractions, limits, arguments.batch)
    print_verdicts(summaries, fractions, lag, targets, check)
    fail_on_problems(summaries, lag, check)


if __name__ == "__main__":
    main()
