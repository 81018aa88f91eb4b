"""``invoice-ledger reconcile --forever`` stops promptly on SIGTERM in the middle of a long
sweep, leaving every reconciled invoice whole; the next sweep starts from the top."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select

from service.domain.events import InvoiceEventType
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import events, projection_checkpoints
from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import cybersource_environment

INVOICES = 200
GRACE_SECONDS = 4.0
# Slow enough that the sweep takes tens of seconds: the signal lands in its middle.
REQUESTS_PER_SECOND = 10
STARTED_WITHIN_SECONDS = 60.0


def many_invoices(sandbox_url: str) -> None:
    with httpx.Client(base_url=f"{sandbox_url}/sandbox", timeout=30) as client:
        for index in range(INVOICES):
            client.post(
                "/invoices",
                json={
                    "invoiceNumber": f"W-{index:04d}",
                    "totalAmount": "25.00",
                    "currency": "USD",
                    "dueDate": "2026-12-31",
                    "status": "SENT",
                },
            ).raise_for_status()


async def reconciler_events(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(events.c.stream_id, events.c.type))
            return [(row.stream_id, row.type) for row in rows]
    finally:
        await engine.dispose()


async def lease_holder(database_url: str) -> str | None:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with engine.connect() as connection:
            owner: str | None = await connection.scalar(
                select(projection_checkpoints.c.owner).where(
                    projection_checkpoints.c.name == "reconciler"
                )
            )
            return owner
    finally:
        await engine.dispose()


def test_sigterm_during_a_long_sweep_stops_within_the_grace_and_leaves_invoices_whole(
    sandbox_url: str, database_url: str, tmp_path: Path
) -> None:
    many_invoices(sandbox_url)
    environment = {
        **os.environ,
        **cybersource_environment(sandbox_url),
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_CYBERSOURCE_MAX_REQUESTS_PER_SECOND": str(REQUESTS_PER_SECOND),
        "LEDGER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    log_path = tmp_path / "reconciler.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "reconcile", "--forever"],
            env=environment,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + STARTED_WITHIN_SECONDS
        while len({stream for stream, _ in asyncio.run(reconciler_events(database_url))}) < 20:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = worker.wait(timeout=GRACE_SECONDS * 3)
        stopped_after_seconds = time.monotonic() - signalled
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log_path.read_text()

    assert returncode == 0, output
    assert stopped_after_seconds < GRACE_SECONDS, output
    assert "reconciler stopped" in output and "round_cancelled" in output
    # Cut short: some invoices reconciled, not all; each one reconciled is whole, with its
    # history and the observation of the same answer, appended together.
    recorded = asyncio.run(reconciler_events(database_url))
    streams = {stream for stream, _ in recorded}
    assert 20 <= len(streams) < INVOICES
    observations = Counter(
        stream for stream, kind in recorded if kind == InvoiceEventType.INVOICE_OBSERVED
    )
    assert observations == Counter(dict.fromkeys(streams, 1))
    assert asyncio.run(lease_holder(database_url)) is None

    # The next sweep starts from the top of the list: what was reconciled is not appended
    # again, and the rest is.
    environment["LEDGER_CYBERSOURCE_MAX_REQUESTS_PER_SECOND"] = "1000"
    swept = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert swept.returncode == 0, swept.stderr
    report = swept.stderr.decode()
    assert f"checked {INVOICES}, changed {INVOICES - len(streams)}, failed 0" in report
    assert len({stream for stream, _ in asyncio.run(reconciler_events(database_url))}) == INVOICES


def test_the_worker_on_its_own_serves_its_metrics_and_the_time_of_its_last_good_sweep(
    sandbox_url: str, database_url: str, tmp_path: Path
) -> None:
    from tests.support.process import free_port

    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        json={"invoiceNumber": "M-1", "totalAmount": "9.00", "dueDate": "2026-12-31"},
    ).raise_for_status()
    port = free_port()
    log_path = tmp_path / "reconciler.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "reconcile", "--forever",
             "--metrics-port", str(port)],
            env={**os.environ, **cybersource_environment(sandbox_url),
                 "LEDGER_DATABASE_URL": database_url},
            stdout=log_file,
            stderr=log_file,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTED_WITHIN_SECONDS
        last_success = 0.0
        while last_success == 0.0:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
            try:
                exposition = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.TransportError:
                continue
            for line in exposition.splitlines():
                if line.startswith("ledger_reconciler_sweep_last_success_timestamp_seconds "):
                    last_success = float(line.split()[1])
        assert abs(last_success - time.time()) < STARTED_WITHIN_SECONDS
        assert 'ledger_reconciler_calls_total{outcome="answered"}' in exposition
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=GRACE_SECONDS * 3) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
