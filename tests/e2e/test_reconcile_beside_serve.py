"""``reconcile --sweep`` run while the serving reconciler sweeps the same Cybersource: one
sweeper at a time, so the two together keep to the configured request rate, and the command
completes. Real processes, a local Cybersource that notes when each call arrives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from service.sandbox.app import create_sandbox_app
from tests.support.cybersource_sandbox import (
    MERCHANT,
    create_sandbox_invoices,
    cybersource_environment,
)
from tests.support.databases import fresh_sqlite_database
from tests.support.process import free_port, start_serve, wait_until_healthy
from tests.support.server import serving

INVOICES = 60
RATE_PER_SECOND = 10
# Calls in any one second: the rate, and a little for the limiter's burst and the clock.
CALLS_PER_SECOND_MAX = RATE_PER_SECOND * 1.3 + 1
FIRST_CALL_WAIT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20


class CallTimes:
    """ASGI middleware noting the arrival of every REST call (not the sandbox's helpers)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.arrivals: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/invoicing/", "/tss/")):
            self.arrivals.append(time.monotonic())
        await self._app(scope, receive, send)

    def most_in_one_second(self, since: float) -> int:
        times = sorted(arrival for arrival in self.arrivals if arrival >= since)
        most, first = 0, 0
        for last, arrival in enumerate(times):
            while arrival - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most


@pytest.fixture
def cybersource() -> Iterator[tuple[str, CallTimes]]:
    calls = CallTimes(create_sandbox_app([MERCHANT]))
    with serving(calls) as url:
        create_sandbox_invoices(url, INVOICES)
        yield url, calls


def test_a_command_sweep_beside_the_serving_reconciler_keeps_to_the_rate(
    cybersource: tuple[str, CallTimes], tmp_path: Path
) -> None:
    url, calls = cybersource
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            **cybersource_environment(url),
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_CYBERSOURCE_MAX_REQUESTS_PER_SECOND": str(RATE_PER_SECOND),
        }
        port, log_path = free_port(), tmp_path / "serve.log"
        serve = start_serve(environment, port, log_path)
        try:
            wait_until_healthy(serve, port, log_path)
            deadline = time.monotonic() + FIRST_CALL_WAIT_SECONDS
            while not calls.arrivals and time.monotonic() < deadline:
                time.sleep(0.05)  # the serving reconciler's first sweep has begun
            assert calls.arrivals, log_path.read_text()
            command_started = time.monotonic()
            command = subprocess.run(
                [sys.executable, "-m", "service.fronts.cli", "reconcile", "--sweep", "--full"],
                env={**os.environ, **environment},
                capture_output=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
            )
        finally:
            serve.terminate()
            serve.wait(timeout=STOP_TIMEOUT_SECONDS)
    stderr = command.stderr.decode()
    assert command.returncode == 0, stderr
    assert f"checked {INVOICES}," in stderr and "failed 0" in stderr
    assert calls.most_in_one_second(since=command_started) <= CALLS_PER_SECOND_MAX
    assert "taken over" in stderr
    assert "reconciler.lease_lost" in log_path.read_text()  # the serving one stood by
