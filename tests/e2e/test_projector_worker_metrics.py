"""`invoice-ledger project --metrics-port`: the projector worker is scraped like `serve`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.databases import fresh_sqlite_database
from tests.support.events import invoice_event
from tests.support.process import free_port

SCRAPE_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20


async def append_events(database_url: str, count: int) -> None:
    engine = create_engine(resolve_database_url(database_url))
    try:
        store = event_store_for(engine)
        for number in range(count):
            await store.append([invoice_event(f"W-{number}", f"w-{number}")])
    finally:
        await engine.dispose()


def metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_the_projector_worker_exports_that_it_runs_and_where_it_is(tmp_path: Path) -> None:
    with fresh_sqlite_database(tmp_path) as database_url:
        asyncio.run(append_events(database_url, 3))
        port = free_port()
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "project", "--metrics-port", str(port)],
            env={**os.environ, "LEDGER_DATABASE_URL": database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + SCRAPE_TIMEOUT_SECONDS
            scraped = ""
            while time.monotonic() < deadline and worker.poll() is None:
                try:
                    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
                except httpx.HTTPError:
                    scraped = ""
                if metric_value(scraped, "ledger_projector_position") == 3:
                    break
                time.sleep(0.1)
            assert metric_value(scraped, "ledger_projector_position") == 3, scraped
            assert metric_value(scraped, "ledger_projector_up") == 1
            assert metric_value(scraped, "ledger_projector_events_total") == 3
            assert metric_value(scraped, "ledger_projector_errors_total") == 0
        finally:
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=STOP_TIMEOUT_SECONDS)
        assert worker.returncode == 0, errors.decode()


def test_a_metrics_port_in_use_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    with fresh_sqlite_database(tmp_path) as database_url, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.fronts.cli", "project", "--metrics-port", str(port)],
            env={**os.environ, "LEDGER_DATABASE_URL": database_url},
            capture_output=True,
            timeout=STOP_TIMEOUT_SECONDS,
        )
    assert result.returncode == 2
    message = result.stderr.decode().strip()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
