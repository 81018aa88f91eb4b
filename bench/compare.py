"""Webhook ingestion, this checkout against another one, in one run: the server's CPU per
delivery and its throughput, with the one-INSERT baseline beside them.

On a shared machine absolute figures move with the load from round to round; the rounds of
each target alternate, so the same-run ratio (this checkout's CPU per delivery over the other
checkout's) is the figure to compare. The load average is printed with every round.

Both services run with the projector off, on one throwaway PostgreSQL database, and each
round sends distinct notifications signed just before it (as ``bench/ingest.py`` does). The
other checkout is served by this checkout's Python environment: make one with
``git worktree add /tmp/before <commit>``.

Usage: ``python -m bench.compare --before /tmp/before --duration 10 --rounds 3``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import PATH, free_port, migrated_database, server, signed_delivery
from bench.ingest import EVENT_TYPE, TOLERANCE_SECONDS, baseline_command, process_cpu
from bench.wrk import LUA_SCRIPT, WrkResult, require_wrk, run_wrk, write_deliveries

THIS_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    target: str
    result: WrkResult
    server_cpu_us_per_delivery: float
    load_average: str

    def __str__(self) -> str:
        return (
            f"{self.target:9s} {self.result.throughput:7.0f}/s"
            f"  server CPU {self.server_cpu_us_per_delivery:5.0f} us per delivery"
            f"  p50 {self.result.p50_ms:6.1f} ms  p99 {self.result.p99_ms:6.1f} ms"
            f"  200s {self.result.acknowledged}, other {self.result.other},"
            f" socket errors {self.result.socket_errors}  load average {self.load_average}"
        )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Comparison:
    def __init__(
        self, arguments: argparse.Namespace, database_url: str, environment: dict[str, str]
    ):
        self.arguments = arguments
        self.database_url = database_url
        self.environment = {
            **environment,
            "LEDGER_WEBHOOK_TOLERANCE_SECONDS": str(TOLERANCE_SECONDS),
            "LEDGER_PROJECTOR_ENABLED": "false",
            # wrk is one client: its share of requests in flight must cover its connections.
            "LEDGER_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(max(arguments.connections, 20)),
        }
        self.directory = Path(tempfile.mkdtemp(prefix="bench-compare-"))
        self.script = self.directory / "deliveries.lua"
        self.script.write_text(LUA_SCRIPT)
        self.files = 0

    def deliveries(self, seconds: float) -> Path:
        self.files += 1
        path = self.directory / f"deliveries-{self.files}.tsv"
        write_deliveries(path, int(seconds * self.arguments.max_rate) + 1000, signed_delivery)
        return path

    def wrk(self, port: int, deliveries: Path, seconds: float) -> WrkResult:
        return run_wrk(
            f"http://127.0.0.1:{port}{PATH}",
            self.script,
            deliveries=deliveries,
            event_type=EVENT_TYPE,
            threads=self.arguments.threads,
            connections=self.arguments.connections,
            duration_seconds=seconds,
        )

    def measure(self, target: str, checkout: Path | None) -> Measured:
        port = free_port()
        if checkout is None:
            command, environment = baseline_command(port, self.database_url), {}
        else:
            command = [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)]
            # The checkout's own code, whatever the environment has installed.
            environment = {**self.environment, "PYTHONPATH": str(checkout)}
        warmup, timed = (
            self.deliveries(self.arguments.warmup),
            self.deliveries(self.arguments.duration),
        )
        directory = os.getcwd()
        os.chdir(checkout or THIS_CHECKOUT)
        try:
            with server(command, port, environment) as process:
                self.wrk(port, warmup, self.arguments.warmup)
                load, before = load_average(), process_cpu(process.pid) or 0.0
                result = self.wrk(port, timed, self.arguments.duration)
                after = process_cpu(process.pid) or 0.0
        finally:
            os.chdir(directory)
        cpu = (after - before) * 1e6 / max(1, result.requests)
        return Measured(target, result, cpu, load)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target, alternating")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-rate", type=float, default=9000, help="deliveries per second")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-INSERT rounds")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    require_wrk()
    targets: list[tuple[str, Path | None]] = [
        ("before", arguments.before.resolve()),
        ("after", THIS_CHECKOUT),
    ]
    if not arguments.no_baseline:
        targets.append(("baseline", None))
    measured: list[Measured] = []
    with migrated_database("bench_compare") as (database_url, environment):
        comparison = Comparison(arguments, database_url, environment)
        for round_number in range(1, arguments.rounds + 1):
            for target, checkout in targets:
                measured.append(comparison.measure(target, checkout))
                print(f"round {round_number} {measured[-1]}", flush=True)
    medians = {}
    print("\nmedians:")
    for target, _ in targets:
        mine = [m for m in measured if m.target == target]
        cpu = statistics.median(m.server_cpu_us_per_delivery for m in mine)
        rate = statistics.median(m.result.throughput for m in mine)
        medians[target] = (cpu, rate)
        print(f"  {target:9s} {rate:7.0f}/s  server CPU {cpu:5.0f} us per delivery")
    ratios = [
        a.server_cpu_us_per_delivery / b.server_cpu_us_per_delivery
        for b, a in zip(
            [m for m in measured if m.target == "before"],
            [m for m in measured if m.target == "after"],
            strict=True,
        )
    ]
    print(
        f"after / before, server CPU per delivery, round by round: "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}"
    )
    if "baseline" in medians:
        baseline_rate = medians["baseline"][1]
        for target in ("before", "after"):
            print(f"  {target} throughput x baseline: {medians[target][1] / baseline_rate:.2f}")


if __name__ == "__main__":
    main()
