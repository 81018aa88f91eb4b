"""What every benchmark needs: a migrated throwaway database, the service as a process of
its own, and signed notifications to send it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.postgres import throwaway_database
from service.cybersource.webhook_signature import sign

KEY_ID = "bench-key"
KEY = secrets.token_bytes(32)
PATH = "/webhooks/cybersource"
INVOICE_COUNT = 10_000
STARTUP_TIMEOUT_SECONDS = 30.0
RESULTS_DIRECTORY = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(
    command: list[str], port: int, environment: dict[str, str], health_path: str = "/healthz"
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command,
        env={**os.environ, **environment},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health_path}", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not start") from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


def signed_delivery() -> tuple[bytes, dict[str, str]]:
    """A new invoicing notification, signed now, as Cybersource would send it."""
    invoice_number = f"BENCH-{secrets.randbelow(INVOICE_COUNT)}"
    body = json.dumps(
        {
            "notificationId": str(uuid.uuid4()),
            "retryNumber": 0,
            "eventType": "invoicing.customer.invoice.partial-payment",
            "eventDate": datetime.now(UTC).isoformat(),
            "webhookId": "bench-webhook",
            "payloads": [
                {
                    "data": {
                        "invoiceNumber": invoice_number,
                        "balanceAmount": f"{secrets.randbelow(100_000) / 100:.2f}",
                        "currency": "USD",
                        "dueDate": "2026-12-31",
                        "organizationID": "bench",
                    }
                }
            ],
        }
    ).encode()
    signature = sign(KEY_ID, KEY, body, int(time.time() * 1000))
    return body, {
        "Content-Type": "application/json",
        "v-c-signature": signature,
        "V-C-Event-Type": "invoicing.customer.invoice.partial-payment",
    }


@contextmanager
def migrated_database(prefix: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A throwaway PostgreSQL database at the migrations' head, and the service's environment."""
    with throwaway_database(prefix) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": f"{KEY_ID}:{base64.b64encode(KEY).decode()}",
        }
        subprocess.run(
            [sys.executable, "-m", "service.fronts.cli", "migrate"],
            env={**os.environ, **environment},
            check=True,
            stderr=subprocess.DEVNULL,
        )
        yield database_url, environment


@dataclass(frozen=True, slots=True)
class Target:
    """One figure a benchmark measured, beside its target and its same-run baseline."""

    measure: str
    figure: float
    unit: str
    limit: float
    at_least: bool  # the figure must reach the limit (else stay under it)
    baseline: str = ""

    @property
    def met(self) -> bool:
        return self.figure >= self.limit if self.at_least else self.figure <= self.limit


def print_targets(targets: list[Target]) -> None:
    """Every target beside its figure, its same-run baseline, and whether it was met."""
    print("\ntarget                                    figure          target       same run")
    for t in targets:
        bound = f"{'>=' if t.at_least else '<='} {t.limit:,.6g} {t.unit}"
        verdict = "met" if t.met else "MISSED"
        print(
            f"{t.measure:40s}  {t.figure:>10,.6g} {t.unit:5s} {bound:>16s}  {verdict:6s}"
            f"  {t.baseline}"
        )
