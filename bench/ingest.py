"""Webhook ingestion benchmark on PostgreSQL: the receiver against a one-INSERT baseline.

Both servers run as separate processes (one uvicorn worker each) on one throwaway database,
and receive signed deliveries from the same load generator, in alternating rounds within one
run, so a shared, noisy machine affects both alike. Usage: ``make bench`` or
``python -m bench.ingest --duration 15 --rounds 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.harness import (
    PATH,
    RESULTS_DIRECTORY,
    free_port,
    migrated_database,
    server,
    signed_delivery,
)
from bench.load import LoadResult, run_load


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time consumed so far by these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that has exited
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"postgres"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class Round:
    target: str
    result: LoadResult
    server_cpu_microseconds_per_request: float
    postgres_cpu_microseconds_per_request: float

    def __str__(self) -> str:
        return (
            f"{self.target:9s}: {self.result.throughput:7.0f}/s"
            f"  p50 {self.result.percentile_ms(0.5):6.1f} ms"
            f"  p99 {self.result.percentile_ms(0.99):6.1f} ms"
            f"  CPU per request: server {self.server_cpu_microseconds_per_request:4.0f} us,"
            f" PostgreSQL {self.postgres_cpu_microseconds_per_request:4.0f} us"
            f"  statuses {self.result.statuses}"
        )


def measure_round(
    target: str, port: int, pid: int, arguments: argparse.Namespace
) -> tuple[LoadResult, Round]:
    def load(duration_seconds: float) -> LoadResult:
        return asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                PATH,
                signed_delivery,
                connections=arguments.connections,
                duration_seconds=duration_seconds,
            )
        )

    warmup = load(arguments.warmup)
    server_before, postgres_before = cpu_seconds([pid]), cpu_seconds(postgres_pids())
    result = load(arguments.duration)
    requests = max(1, len(result.latencies_seconds))
    return warmup, Round(
        target,
        result,
        (cpu_seconds([pid]) - server_before) * 1e6 / requests,
        (cpu_seconds(postgres_pids()) - postgres_before) * 1e6 / requests,
    )


async def count_events(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM events"))
    finally:
        await connection.close()


def summarise(rounds: list[Round], target: str) -> dict[str, float]:
    mine = [r.result for r in rounds if r.target == target]
    return {
        "throughput_per_second": statistics.median(r.throughput for r in mine),
        "p50_ms": statistics.median(r.percentile_ms(0.50) for r in mine),
        "p99_ms": statistics.median(r.percentile_ms(0.99) for r in mine),
        "requests": sum(len(r.latencies_seconds) for r in mine),
        "non_2xx": sum(n for r in mine for status, n in r.statuses.items() if status >= 300),
        "server_cpu_us_per_request": statistics.median(
            r.server_cpu_microseconds_per_request for r in rounds if r.target == target
        ),
        "postgres_cpu_us_per_request": statistics.median(
            r.postgres_cpu_microseconds_per_request for r in rounds if r.target == target
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per target, alternating")
    parser.add_argument("--connections", type=int, default=32)
    arguments = parser.parse_args()

    service_port, baseline_port = free_port(), free_port()
    rounds: list[Round] = []
    with migrated_database("ledger_bench") as (database_url, environment):
        service_command = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(service_port),
        ]
        baseline_command = [
            sys.executable,
            "-m",
            "bench.baseline_app",
            "--port",
            str(baseline_port),
            "--dsn",
            database_url,
        ]
        with (
            server(service_command, service_port, environment) as service,
            server(baseline_command, baseline_port, {}) as bare,
        ):
            targets = {
                "baseline": (baseline_port, bare.pid),
                "receiver": (service_port, service.pid),
            }
            acknowledged_by_receiver = 0
            for round_number in range(1, arguments.rounds + 1):
                for target, (port, pid) in targets.items():
                    warmup, measured = measure_round(target, port, pid, arguments)
                    rounds.append(measured)
                    print(f"round {round_number} {measured}", flush=True)
                    if target == "receiver":
                        acknowledged_by_receiver += warmup.statuses.get(200, 0)
                        acknowledged_by_receiver += measured.result.statuses.get(200, 0)
        recorded = asyncio.run(count_events(database_url))

    baseline, receiver = summarise(rounds, "baseline"), summarise(rounds, "receiver")
    ratio = receiver["throughput_per_second"] / baseline["throughput_per_second"]
    report = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "connections": arguments.connections,
        "duration_seconds": arguments.duration,
        "rounds": arguments.rounds,
        "baseline": baseline,
        "receiver": receiver,
        "throughput_ratio": ratio,
        "receiver_acknowledged": acknowledged_by_receiver,
        "events_recorded": recorded,
    }
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    (RESULTS_DIRECTORY / f"ingest-{report['date']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(
        f"\n| target | throughput (req/s) | p50 (ms) | p99 (ms) |\n|---|---|---|---|\n"
        f"| baseline (1 INSERT) | {baseline['throughput_per_second']:.0f} |"
        f" {baseline['p50_ms']:.1f} | {baseline['p99_ms']:.1f} |\n"
        f"| receiver | {receiver['throughput_per_second']:.0f} |"
        f" {receiver['p50_ms']:.1f} | {receiver['p99_ms']:.1f} |\n"
        f"\nratio {ratio:.2f} (target ≥ 0.60); receiver p99 {receiver['p99_ms']:.1f} ms"
        " (target < 50 ms)"
    )
    if recorded != acknowledged_by_receiver:
        raise SystemExit(f"{acknowledged_by_receiver} acknowledged but {recorded} events recorded")
    if receiver["non_2xx"] or baseline["non_2xx"]:
        raise SystemExit("some requests were not acknowledged with 2xx: see statuses above")


if __name__ == "__main__":
    main()
