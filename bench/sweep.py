"""Reconciliation sweep benchmark: what an incremental sweep costs beside a full one.

``python -m bench.sweep --invoices 10000 --rate 100`` (``make bench-sweep``). The sandbox runs
as its own process and holds a portfolio in every status (see ``PORTFOLIO``); each sweep runs
in a process of its own against a throwaway PostgreSQL ledger, so its peak memory is its own.

1. A full sweep of a quarter of the invoices, then of all of them (today's sweep: one Get
   Invoice Details call per invoice), then the projector catches up.
2. 1% of the invoices change in the sandbox with no webhook sent (payments in full and in
   part, totals updated, cancellations, new invoices), and an incremental sweep runs.
3. The projector catches up, and a verifying full sweep (at a high rate) must append
   nothing: every invoice's status, total, balance, currency and due date in the ledger are
   then exactly what Get Invoice Details says.

Figures: detail calls of the incremental sweep against the full one (target ≤ 3%), the
request rate each achieved against the client's limit (target ≥ 90%), peak memory of each,
and beside them the list alone with no rate limit (the sandbox's own ceiling for a sweep
that is mostly list calls).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    RESULTS_DIRECTORY,
    Target,
    free_port,
    migrated_database,
    print_targets,
    server,
)
from service.bootstrap import command_ledger
from service.cybersource.http_signature import MerchantCredentials
from service.reconciler.client import CybersourceClient
from service.reconciler.sweep import LIST_PAGES_IN_FLIGHT, SWEEP_CONCURRENCY, SWEEP_STATUS_ORDER
from service.reconciler.transport import ClientLimits
from service.settings import load_settings

MERCHANT_ID, KEY_ID = "benchmerchant", "bench-rest-key"
SECRET = base64.b64encode(b"bench-rest-secret-0123456789abcd").decode()
ENVIRONMENT = {
    "LEDGER_CYBERSOURCE_MERCHANT_ID": MERCHANT_ID,
    "LEDGER_CYBERSOURCE_KEY_ID": KEY_ID,
    "LEDGER_CYBERSOURCE_SECRET_KEY": SECRET,
}
# Per thousand invoices: a portfolio where most invoices are settled or simply sent, and 1%
# can move without a status change (partly paid, or a payment under review).
PORTFOLIO = (
    (650, "PAID"),
    (250, "SENT"),
    (50, "CANCELED"),
    (20, "CREATED"),
    (20, "DRAFT"),
    (8, "PARTIAL"),
    (2, "PENDING"),
)
VERIFYING_RATE_PER_SECOND = 1000.0


def status_of(index: int) -> str:
    # Spread over the numbers (7919 is prime to 1000): any stretch of invoices has every status.
    position = index * 7919 % 1000
    for share, status in PORTFOLIO:
        if position < share:
            return status
        position -= share
    raise AssertionError("the portfolio covers a thousand")


def invoice_number(index: int) -> str:
    return f"SW-{index:06d}"


async def sweep_once(
    sandbox_url: str, database_url: str, rate: float, full: bool
) -> dict[str, Any]:
    credentials = MerchantCredentials(MERCHANT_ID, KEY_ID, base64.b64decode(SECRET))
    # The client is built here, not by service/bootstrap.py: the bench sets its rate and its
    # concurrency (8), which the settings do not offer.
    limits = ClientLimits(max_requests_per_second=rate, max_concurrency=8)
    # The bench's merchant, whatever LEDGER_CYBERSOURCE_* the environment holds: the
    # reconciler acts for the organizations the settings name.
    settings = load_settings(
        database_url=database_url,
        cybersource_merchant_id=MERCHANT_ID,
        cybersource_key_id=KEY_ID,
        cybersource_secret_key=SECRET,
        cybersource_organization_ids=(),
    )
    # A connection for each invoice reconciled at once, as `serve`'s pool (20) allows.
    async with (
        command_ledger(settings, pool_size=SWEEP_CONCURRENCY) as ledger,
        CybersourceClient(sandbox_url, credentials, limits) as client,
    ):
        reconciler = ledger.reconciler(client)
        started = time.perf_counter()
        summary = await reconciler.sweep(full=full)
        elapsed = time.perf_counter() - started
        requests = client.requests_sent
    return {
        "full": full,
        "checked": summary.checked,
        "detail_calls": summary.fetched,
        "list_calls": requests - summary.fetched,
        "changed": summary.changed,
        "failed": summary.failed,
        "fetch_reasons": {reason.value: count for reason, count in summary.fetch_reasons.items()},
        "requests": requests,
        "seconds": round(elapsed, 2),
        "achieved_per_second": round(requests / elapsed, 1),
        "limit_per_second": rate,
        "share_of_limit": round(requests / elapsed / rate, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def list_once(sandbox_url: str, rate: float) -> dict[str, Any]:
    """The list alone, as fast as the sandbox answers: the ceiling of a sweep that fetches
    few details, whatever its rate limit."""
    credentials = MerchantCredentials(MERCHANT_ID, KEY_ID, base64.b64decode(SECRET))
    limits = ClientLimits(max_requests_per_second=rate, max_concurrency=8)
    async with CybersourceClient(sandbox_url, credentials, limits) as client:
        started = time.perf_counter()
        listed = 0
        for status in SWEEP_STATUS_ORDER:
            async for page in client.iterate_invoice_pages(
                status, pages_in_flight=LIST_PAGES_IN_FLIGHT
            ):
                listed += len(page)
        elapsed = time.perf_counter() - started
        return {
            "listed": listed,
            "list_calls": client.requests_sent,
            "seconds": round(elapsed, 2),
            "achieved_per_second": round(client.requests_sent / elapsed, 1),
        }


def create_invoices(sandbox: httpx.Client, first: int, count: int) -> None:
    for index in range(first, first + count):
        number, status = invoice_number(index), status_of(index)
        sandbox.post(
            "/invoices",
            json={
                "invoiceNumber": number,
                "totalAmount": "25.00",
                "currency": "USD",
                "dueDate": "2026-12-31",
                "allowPartialPayments": True,
                "status": status if status in ("DRAFT", "CREATED") else "SENT",
            },
        ).raise_for_status()
        action = {
            "PAID": ("pay", {"amount": "25.00"}),
            "PARTIAL": ("pay", {"amount": "10.00"}),
            "PENDING": ("pending", {"amount": "25.00", "transactionId": f"tx-{number}"}),
            "CANCELED": ("cancel", {}),
        }.get(status)
        if action is not None:
            sandbox.post(f"/invoices/{number}/{action[0]}", json=action[1]).raise_for_status()


def change_one_percent(sandbox: httpx.Client, invoices: int) -> dict[str, int]:
    """Changes no webhook reports, on 1% of the invoices: taken from the SENT ones."""
    sent = [index for index in range(invoices) if status_of(index) == "SENT"]
    changes = max(10, invoices // 100)
    plan = {"paid": 4, "partly_paid": 2, "total_updated": 2, "canceled": 1, "new": 1}
    counts = {kind: changes * share // 10 for kind, share in plan.items()}
    chosen = iter(sent[:: max(1, len(sent) // changes)])
    for kind, count in counts.items():
        for _ in range(count):
            if kind == "new":
                continue
            number = invoice_number(next(chosen))
            if kind == "paid":
                answer = sandbox.post(f"/invoices/{number}/pay", json={"amount": "25.00"})
            elif kind == "partly_paid":
                answer = sandbox.post(f"/invoices/{number}/pay", json={"amount": "5.00"})
            elif kind == "total_updated":
                answer = sandbox.post(f"/invoices/{number}/update", json={"totalAmount": "27.50"})
            else:
                answer = sandbox.post(f"/invoices/{number}/cancel")
            answer.raise_for_status()
    create_invoices(sandbox, invoices, counts["new"])
    return counts


def measured_sweep(
    sandbox_url: str, database_url: str, rate: float, mode: str, label: str
) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.sweep", "--run-one", sandbox_url, database_url,
         str(rate), mode],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"{label}: {result}", flush=True)
    return result


def project(environment: dict[str, str]) -> None:
    """Catch the read models up, then ANALYZE: this machine's PostgreSQL runs without
    autovacuum, and a never-analysed table would give the sweep's page lookups (a hundred
    numbers at a time) a sequential scan that production, analysed, does not get."""
    subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "project", "--once"],
        env={**os.environ, **environment},
        check=True,
        stderr=subprocess.DEVNULL,
    )
    asyncio.run(analyze(environment["LEDGER_DATABASE_URL"]))


async def analyze(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--run-one":
        sandbox_url, database_url, rate, mode = sys.argv[2:]
        if mode == "list":
            result = asyncio.run(list_once(sandbox_url, float(rate)))
        else:
            result = asyncio.run(sweep_once(sandbox_url, database_url, float(rate), mode == "full"))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="client rate limit (req/s)")
    arguments = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "command": f"python -m bench.sweep --invoices {arguments.invoices} --rate {arguments.rate}",
    }
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "service.fronts.cli", "sandbox", "--port", str(port)]
    with (
        migrated_database("ledger_bench_sweep") as (database_url, environment),
        server(command, port, ENVIRONMENT, health_path="/sandbox/deliveries"),
        httpx.Client(base_url=f"{sandbox_url}/sandbox", timeout=30) as sandbox,
    ):
        quarter = arguments.invoices // 4
        create_invoices(sandbox, 0, quarter)
        report["full_quarter"] = measured_sweep(
            sandbox_url, database_url, arguments.rate, "full", "full sweep, a quarter"
        )
        create_invoices(sandbox, quarter, arguments.invoices - quarter)
        report["full"] = measured_sweep(
            sandbox_url, database_url, arguments.rate, "full", "full sweep"
        )
        project(environment)
        report["changes"] = change_one_percent(sandbox, arguments.invoices)
        report["incremental"] = measured_sweep(
            sandbox_url, database_url, arguments.rate, "incremental", "incremental sweep"
        )
        report["list_ceiling"] = measured_sweep(
            sandbox_url, database_url, VERIFYING_RATE_PER_SECOND, "list", "the list alone"
        )
        project(environment)
        report["verifying_full"] = measured_sweep(
            sandbox_url, database_url, VERIFYING_RATE_PER_SECOND, "full", "verifying full sweep"
        )
    incremental, full = report["incremental"], report["full"]
    report["detail_calls_incremental_over_full"] = round(
        incremental["detail_calls"] / full["detail_calls"], 4
    )
    report["exact_agreement"] = (
        report["verifying_full"]["changed"] == 0 and report["verifying_full"]["failed"] == 0
    )
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    (RESULTS_DIRECTORY / f"sweep-{report['date']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print_targets(targets(report))


def targets(report: dict[str, Any]) -> list[Target]:
    full, incremental, verifying = report["full"], report["incremental"], report["verifying_full"]
    sweeps = [report[name] for name in ("full_quarter", "full", "incremental", "verifying_full")]
    peaks = [sweep["peak_rss_mb"] for sweep in sweeps]
    return [
        Target(
            "incremental sweep, share of the limit",
            incremental["share_of_limit"] * 100,
            "%",
            90,
            at_least=True,
            baseline=f"full sweep {full['share_of_limit'] * 100:.1f}%",
        ),
        Target(
            "incremental sweep, detail calls",
            report["detail_calls_incremental_over_full"] * 100,
            "%",
            3,
            at_least=False,
            baseline=f"full sweep {full['detail_calls']:,} calls",
        ),
        Target(
            "verifying sweep, facts appended",
            verifying["changed"] + verifying["failed"],
            "facts",
            0,
            at_least=False,
            baseline="none: the ledger agrees exactly",
        ),
        Target(
            "peak memory, largest sweep over smallest",
            max(peaks) / min(peaks),
            "x",
            1.25,
            at_least=False,
            baseline=f"{min(peaks):.0f}-{max(peaks):.0f} MB",
        ),
    ]


if __name__ == "__main__":
    main()
