"""A reconciler that cannot reach or convince Cybersource says so: each failed call is logged
with the call, the HTTP status and Cybersource's reason (no secret, no payer data) and counted
in ledger_reconciler_calls_total / ledger_reconciler_errors_total."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from service.app import create_app
from service.cybersource.http_signature import MerchantCredentials
from service.domain.identity import InvoiceKey
from service.reconciler.answers import CallFailure, CallOutcome, CybersourceError
from service.reconciler.client import CybersourceClient
from service.reconciler.outcomes import ReconcilerFailure
from service.reconciler.reconciler import Reconciler
from service.reconciler.worker import ReconcilerWorker
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.cybersource_sandbox import FAST, MERCHANT
from tests.support.organizations_cybersource import OrganizationsCybersource
from tests.support.server import serving

pytestmark = pytest.mark.anyio

WRONG_SECRET = b"not-the-secret-0123456789abcdef"
METRICS_WAIT_SECONDS_MAX = 20.0


class Observed:
    def __init__(self) -> None:
        self.calls: list[tuple[CallOutcome, CallFailure | None]] = []

    def __call__(self, outcome: CallOutcome, failure: CallFailure | None) -> None:
        self.calls.append((outcome, failure))


def failed_calls(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "cybersource.call_failed"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_401_is_logged_as_an_error_with_the_call_status_and_reason(
    sandbox_url: str,
) -> None:
    impostor = MerchantCredentials(MERCHANT.merchant_id, MERCHANT.key_id, WRONG_SECRET)
    observed = Observed()
    async with CybersourceClient(sandbox_url, impostor, FAST, observer=observed) as client:
        with capture_logs() as logs, pytest.raises(CybersourceError):
            await client.get_invoice("2670")
    [entry] = failed_calls(logs)
    assert entry["log_level"] == "error"
    assert (entry["call"], entry["status"], entry["reason"]) == (
        "Get Invoice Details",
        401,
        "AUTHENTICATION_FAILED",
    )
    assert (entry["organization_id"], entry["failure"]) == ("ledgertest", "unauthorized")
    logged = json.dumps(logs)
    for secret in (WRONG_SECRET, MERCHANT.secret_key):
        assert secret.decode() not in logged and base64.b64encode(secret).decode() not in logged
    assert observed.calls == [(CallOutcome.REFUSED, CallFailure.UNAUTHORIZED)]


async def test_an_unreachable_host_is_logged_after_the_last_attempt_and_counted() -> None:
    observed = Observed()
    url = f"http://127.0.0.1:{closed_port()}"
    async with CybersourceClient(url, MERCHANT, FAST, observer=observed) as client:
        with capture_logs() as logs, pytest.raises(CybersourceError):
            await client.list_invoices(0, 10, "SENT")
    [entry] = failed_calls(logs)  # once per call, not once per attempt
    assert entry["log_level"] == "warning"
    assert (entry["call"], entry["status"], entry["reason"], entry["failure"]) == (
        "Get List of Invoices",
        None,
        "ConnectError",
        "unreachable",
    )
    assert observed.calls == [(CallOutcome.FAILED, CallFailure.UNREACHABLE)]


@pytest.fixture
def cybersource() -> Iterator[tuple[OrganizationsCybersource, str]]:
    fake = OrganizationsCybersource([MERCHANT])
    with serving(fake.app()) as url:
        yield fake, url


async def test_cybersources_free_text_message_stays_out_of_the_log(
    cybersource: tuple[OrganizationsCybersource, str],
) -> None:
    fake, url = cybersource
    fake.canned.append(
        (400, {"reason": "VALIDATION_ERRORS", "message": "email tanya@example.com is invalid"})
    )
    observed = Observed()
    async with CybersourceClient(url, MERCHANT, FAST, observer=observed) as client:
        with capture_logs() as logs, pytest.raises(CybersourceError):
            await client.get_invoice("2670")
    [entry] = failed_calls(logs)
    assert (entry["status"], entry["reason"], entry["failure"]) == (
        400,
        "VALIDATION_ERRORS",
        "bad_request",
    )
    assert "tanya" not in json.dumps(logs)
    assert observed.calls == [(CallOutcome.REFUSED, CallFailure.BAD_REQUEST)]


async def test_answered_calls_are_counted_too(
    cybersource: tuple[OrganizationsCybersource, str],
) -> None:
    fake, url = cybersource
    fake.add_invoice(MERCHANT.merchant_id, "2670", "SENT", "10.00")
    observed = Observed()
    async with CybersourceClient(url, MERCHANT, FAST, observer=observed) as client:
        with capture_logs() as logs:
            await client.get_invoice("2670")
    assert failed_calls(logs) == []
    assert observed.calls == [(CallOutcome.ANSWERED, None)]


def metric(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not exposed")


def test_the_serving_reconciler_counts_refused_calls_in_its_metrics(
    sandbox_url: str, database_url: str
) -> None:
    settings = load_settings(
        database_url=database_url,
        cybersource_base_url=sandbox_url,
        cybersource_merchant_id=MERCHANT.merchant_id,
        cybersource_key_id=MERCHANT.key_id,
        cybersource_secret_key=base64.b64encode(WRONG_SECRET).decode(),
    )
    unauthorized = 'ledger_reconciler_errors_total{reason="unauthorized"}'
    refused = 'ledger_reconciler_calls_total{outcome="refused"}'
    with serving(create_app(settings)) as url:
        deadline = time.monotonic() + METRICS_WAIT_SECONDS_MAX
        exposition = httpx.get(f"{url}/metrics").text
        # Every series is there from the start; the first sweep's listing is refused.
        assert metric(exposition, 'ledger_reconciler_errors_total{reason="unreachable"}') == 0
        assert metric(exposition, 'ledger_reconciler_errors_total{reason="round_failed"}') == 0
        for lookup in ("recorded", "not_found", "failed"):
            series = f'ledger_reconciler_transaction_lookups_total{{outcome="{lookup}"}}'
            assert metric(exposition, series) == 0
        while metric(exposition, unauthorized) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            exposition = httpx.get(f"{url}/metrics").text
    assert metric(exposition, unauthorized) >= 1
    assert metric(exposition, refused) >= 1
    assert metric(exposition, 'ledger_reconciler_calls_total{outcome="answered"}') == 0


class FlakyDoubts:
    """A read model whose first answer is an unexpected error."""

    def __init__(self) -> None:
        self.asked = 0

    async def doubtful_invoices(
        self, now: datetime, quiet_since: datetime, limit: int
    ) -> list[InvoiceKey]:
        self.asked += 1
        if self.asked == 1:
            raise RuntimeError("a bug in the read model")
        return []


async def test_an_unexpected_error_in_a_round_is_reported_and_the_worker_carries_on(
    database_url: str, sandbox_url: str
) -> None:
    engine = create_engine(resolve_database_url(database_url))
    doubts = FlakyDoubts()
    failures: list[ReconcilerFailure] = []
    stop = asyncio.Event()
    try:
        async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
            worker = ReconcilerWorker(
                Reconciler(client, event_store_for(engine)),
                doubts,
                SqlReadModelStore(engine),
                owner="test",
                sweep_interval_seconds=3600,
                poll_seconds=0.01,
                first_sweep_delay_seconds=3600,
                on_failure=failures.append,
            )
            with capture_logs() as logs:
                running = asyncio.create_task(worker.run(stop))
                for _ in range(500):  # five seconds at most
                    if doubts.asked >= 2:
                        break
                    await asyncio.sleep(0.01)
                stop.set()
                await running
    finally:
        await engine.dispose()
    assert doubts.asked >= 2
    assert failures == [ReconcilerFailure.ROUND_FAILED]
    [entry] = [entry for entry in logs if entry["event"] == "reconciler.round_failed"]
    assert entry["log_level"] == "error" and entry["exc_info"]
