"""``invoice-ledger serve`` as a process: it binds before anything runs, stops its workers first
on SIGTERM, loses no acknowledged delivery, and exits within its grace; a second signal at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import func, select

from service.sandbox.app import create_sandbox_app
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import events, inbox, projection_checkpoints
from tests.support.cybersource_sandbox import (
    MERCHANT,
    create_sandbox_invoices,
    cybersource_environment,
)
from tests.support.databases import fresh_sqlite_database
from tests.support.process import (
    GRACE_SECONDS,
    STARTUP_TIMEOUT_SECONDS,
    free_port,
    start_serve,
    wait_until_healthy,
)
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

# Python's own start-up and exit around the grace, on a shared machine.
PROCESS_OVERHEAD_SECONDS = 3.0
SANDBOX_INVOICES = 60


def row_counts(database_url: str) -> dict[str, int]:
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (events, inbox, projection_checkpoints)
            }
    finally:
        engine.dispose()


def reconciler_events(database_url: str) -> dict[str, int]:
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            # History entries only: an observation (the snapshot appended after them, on its
            # own) may come with the next sweep if the stop fell between the two appends.
            rows = connection.execute(
                select(events.c.stream_id, func.count())
                .where(events.c.source == "reconciler", events.c.type != "InvoiceObserved")
                .group_by(events.c.stream_id)
            )
            return {stream: count for stream, count in rows}
    finally:
        engine.dispose()


async def stored_invoices(database_url: str) -> set[str]:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with engine.connect() as connection:
            return set((await connection.execute(select(events.c.stream_id))).scalars())
    finally:
        await engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with fresh_sqlite_database(tmp_path) as url:
        yield url


@pytest.fixture
def sandbox_with_invoices() -> Iterator[str]:
    with serving(create_sandbox_app([MERCHANT])) as url:
        create_sandbox_invoices(url, SANDBOX_INVOICES)
        yield url


@contextmanager
def occupied_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_serve_on_a_port_in_use_exits_2_with_one_line_and_writes_nothing(
    sqlite_url: str, sandbox_with_invoices: str, tmp_path: Path
) -> None:
    before = row_counts(sqlite_url)
    with occupied_port() as port:
        environment = {
            "LEDGER_DATABASE_URL": sqlite_url,
            "LEDGER_PROJECTOR_ENABLED": "true",
            **cybersource_environment(sandbox_with_invoices),
        }
        finished = subprocess.run(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)],
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr.strip().splitlines() == [
        f"invoice-ledger: cannot listen on 127.0.0.1:{port}: address already in use"
    ]
    assert row_counts(sqlite_url) == before  # no sweep, no projector lease, no event


def test_sigterm_during_a_long_sweep_exits_within_the_grace_leaving_whole_invoices(
    sqlite_url: str, sandbox_with_invoices: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "serve.log"
    port = free_port()
    environment = {
        "LEDGER_DATABASE_URL": sqlite_url,
        "LEDGER_PROJECTOR_ENABLED": "true",
        # Slow enough that the sweep of every invoice takes far longer than the grace.
        "LEDGER_CYBERSOURCE_MAX_REQUESTS_PER_SECOND": "8",
        **cybersource_environment(sandbox_with_invoices),
    }
    process = start_serve(environment, port, log_path)
    try:
        wait_until_healthy(process, port, log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while len(reconciler_events(sqlite_url)) < 3:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=GRACE_SECONDS + PROCESS_OVERHEAD_SECONDS + 10)
        stopped_after_seconds = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert stopped_after_seconds < GRACE_SECONDS + PROCESS_OVERHEAD_SECONDS, log_path.read_text()
    assert exit_code == 0, "a stop that completed within its grace is a clean exit"
    reconciled = reconciler_events(sqlite_url)
    assert 0 < len(reconciled) < SANDBOX_INVOICES, "the sweep was stopped part of the way"
    assert '"event": "server.stopped"' in log_path.read_text()

    # A full sweep now finds no history entry missing for the invoices reconciled before the
    # stop: each invoice's history was written whole or not at all.
    swept = subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "reconcile", "--sweep"],
        env={**os.environ, **environment, "LEDGER_CYBERSOURCE_MAX_REQUESTS_PER_SECOND": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert swept.returncode == 0, swept.stderr
    after = reconciler_events(sqlite_url)
    assert {number: after[number] for number in reconciled} == reconciled


def test_a_second_signal_ends_serve_at_once(sqlite_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    port = free_port()
    environment = {
        "LEDGER_DATABASE_URL": sqlite_url,
        "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
        "LEDGER_SHUTDOWN_GRACE_SECONDS": "60",
    }
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)],
            env={**os.environ, **environment},
            stdout=log_file,
            stderr=log_file,
        )
    try:
        wait_until_healthy(process, port, log_path)
        # A signed delivery whose body is still arriving keeps a request in flight: the first
        # signal waits for it to drain, for up to the grace.
        body = encode(invoice_notification("INV-SLOW", notification_id="INV-SLOW"))
        head = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as in_flight:
            in_flight.sendall(
                f"POST /webhooks/cybersource HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert process.poll() is None, "the first signal waits for the request in flight"
            signalled = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
            assert time.monotonic() - signalled < 2.0
    finally:
        if process.poll() is None:
            process.kill()
    assert '"event": "server.exit_now"' in log_path.read_text()


def test_sigterm_during_ingestion_loses_no_acknowledged_delivery(
    database_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "serve.log"
    port = free_port()
    environment = {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
    }
    process = start_serve(environment, port, log_path)
    acknowledged: list[str] = []
    sent = threading.Event()

    def deliver_until_refused(sender: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for number in range(10_000):
                invoice = f"INV-{sender}-{number}"
                body = encode(invoice_notification(invoice, notification_id=invoice))
                try:
                    answer = client.post(
                        "/webhooks/cybersource", content=body, headers=signed_headers(body)
                    )
                except httpx.HTTPError:
                    return  # the server stopped listening
                if answer.status_code == 200:
                    acknowledged.append(invoice)
                if number == 20:
                    sent.set()

    try:
        wait_until_healthy(process, port, log_path)
        senders = [threading.Thread(target=deliver_until_refused, args=(n,)) for n in range(4)]
        for sender in senders:
            sender.start()
        assert sent.wait(STARTUP_TIMEOUT_SECONDS)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=GRACE_SECONDS + PROCESS_OVERHEAD_SECONDS + 10)
        for sender in senders:
            sender.join(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    stored = asyncio.run(stored_invoices(database_url))
    assert len(acknowledged) > 20
    assert set(acknowledged) <= stored
