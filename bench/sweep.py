"""Reconciliation sweep benchmark: the sandbox holds N invoices; one sweep reconciles them all.

``python -m bench.sweep --invoices 10000 --rate 100``. The sandbox runs as its own process; the
sweep runs in a process of its own too, so its peak memory is its own, once at a quarter of
the invoices and once at all of them (memory should stay flat). The figure of merit is the
request rate the client achieved against the rate limit it was given (target ≥ 90%).
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

import httpx

from bench.harness import RESULTS_DIRECTORY, free_port, migrated_database, server
from service.reconciler.client import ClientLimits, CybersourceClient
from service.reconciler.http_signature import MerchantCredentials
from service.reconciler.reconciler import Reconciler
from service.store.database import create_engine, resolve_database_url
from service.store.event_store import SqlEventStore

MERCHANT_ID, KEY_ID = "benchmerchant", "bench-rest-key"
SECRET = base64.b64encode(b"bench-rest-secret-0123456789abcd").decode()
ENVIRONMENT = {
    "LEDGER_CYBERSOURCE_MERCHANT_ID": MERCHANT_ID,
    "LEDGER_CYBERSOURCE_KEY_ID": KEY_ID,
    "LEDGER_CYBERSOURCE_SECRET_KEY": SECRET,
}


async def sweep_once(sandbox_url: str, database_url: str, rate: float) -> dict[str, Any]:
    credentials = MerchantCredentials(MERCHANT_ID, KEY_ID, base64.b64decode(SECRET))
    engine = create_engine(resolve_database_url(database_url), pool_size=8)
    limits = ClientLimits(max_requests_per_second=rate, max_concurrency=8)
    try:
        async with CybersourceClient(sandbox_url, credentials, limits) as client:
            started = time.perf_counter()
            summary = await Reconciler(client, SqlEventStore(engine)).sweep()
            elapsed = time.perf_counter() - started
            requests = client.requests_sent
    finally:
        await engine.dispose()
    return {
        "checked": summary.checked,
        "changed": summary.changed,
        "failed": summary.failed,
        "requests": requests,
        "seconds": elapsed,
        "achieved_per_second": requests / elapsed,
        "limit_per_second": rate,
        "share_of_limit": requests / elapsed / rate,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def create_invoices(sandbox_url: str, first: int, count: int) -> None:
    with httpx.Client(base_url=sandbox_url, timeout=30) as client:
        for number in range(first, first + count):
            invoice = f"SW-{number:06d}"
            client.post(
                "/sandbox/invoices",
                json={
                    "invoiceNumber": invoice,
                    "totalAmount": "25.00",
                    "currency": "USD",
                    "dueDate": "2026-12-31",
                    "allowPartialPayments": True,
                },
            ).raise_for_status()
            client.post(f"/sandbox/invoices/{invoice}/send").raise_for_status()
            if number % 3 == 0:
                client.post(f"/sandbox/invoices/{invoice}/pay", json={"amount": "10.00"})


def measured_sweep(sandbox_url: str, database_url: str, rate: float) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.sweep", "--run-one", sandbox_url, database_url, str(rate)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"sweep: {result}", flush=True)
    return result


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--run-one":
        print(json.dumps(asyncio.run(sweep_once(sys.argv[2], sys.argv[3], float(sys.argv[4])))))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="client rate limit (req/s)")
    arguments = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
    }
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "service.cli", "sandbox", "--port", str(port)]
    with (
        migrated_database("ledger_bench_sweep") as (database_url, _),
        server(command, port, ENVIRONMENT, health_path="/sandbox/deliveries"),
    ):
        quarter = arguments.invoices // 4
        create_invoices(sandbox_url, 0, quarter)
        report["quarter"] = measured_sweep(sandbox_url, database_url, arguments.rate)
        create_invoices(sandbox_url, quarter, arguments.invoices - quarter)
        report["full"] = measured_sweep(sandbox_url, database_url, arguments.rate)
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    (RESULTS_DIRECTORY / f"sweep-{report['date']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
