"""/metrics, scraped over a socket: requests by route template and status, projection lag,
inbox rows by outcome, process metrics and the signing key's expiry move as the service works."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.settings import load_settings
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

SAMPLE_SECONDS = 0.1
WAIT_SECONDS = 20.0


def samples(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    exposition = client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(client: httpx.Client, name: str, **labels: str) -> float | None:
    return samples(client).get((name, frozenset(labels.items())))


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, "the metric did not move in time"
        time.sleep(0.05)


def deliver(client: httpx.Client, invoice_number: str) -> None:
    body = encode(invoice_notification(invoice_number, notification_id=invoice_number))
    answer = client.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert answer.json() == {"status": "accepted"}


@pytest.fixture
def client(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        projector_enabled=False,  # so that the lag stays for the test to see
        metrics_sample_seconds=SAMPLE_SECONDS,
        webhook_key_expires_at="2027-03-31",
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_requests_are_counted_by_route_template_never_by_raw_path(client: httpx.Client) -> None:
    for number in ("INV-1", "INV-2", "INV-3"):
        client.get(f"/v1/invoices/{number}")
    client.get("/no/such/path-1")
    client.get("/no/such/path-2")
    client.post("/healthz")

    route = "/v1/invoices/{invoicePath:path}"
    assert value(client, "ledger_http_requests_total", route=route, method="GET", status="404") == 3
    assert (
        value(client, "ledger_http_requests_total", route="unmatched", method="GET", status="404")
        == 2
    )
    assert (
        value(client, "ledger_http_requests_total", route="/healthz", method="POST", status="405")
        == 1
    )
    timed = value(client, "ledger_http_request_duration_seconds_count", route=route, method="GET")
    assert timed == 3
    assert not any("INV-1" in str(labels) for _, labels in samples(client))


def test_projection_lag_counts_unprojected_events_and_their_age(client: httpx.Client) -> None:
    eventually(lambda: value(client, "ledger_projection_lag_events") == 0)
    assert value(client, "ledger_projection_lag_seconds") == 0
    for number in ("LAG-1", "LAG-2", "LAG-3"):
        deliver(client, number)
    eventually(lambda: value(client, "ledger_projection_lag_events") == 3)
    first = value(client, "ledger_projection_lag_seconds") or 0.0
    time.sleep(0.5)
    eventually(lambda: (value(client, "ledger_projection_lag_seconds") or 0.0) >= first + 0.4)


def test_inbox_rows_are_counted_by_outcome(client: httpx.Client) -> None:
    deliver(client, "INBOX-1")
    deliver(client, "INBOX-2")
    unsigned = client.post("/webhooks/cybersource", content=b"{}")
    assert unsigned.status_code == 401
    eventually(lambda: value(client, "ledger_inbox_rows", outcome="accepted") == 2)
    eventually(lambda: value(client, "ledger_inbox_rows", outcome="refused") == 1)
    assert value(client, "ledger_inbox_rows", outcome="dead_letter") == 0
    assert value(client, "ledger_inbox_rows", outcome="conflict") == 0


def test_dead_letters_and_conflicts_waiting_for_an_operator_are_counted(
    client: httpx.Client,
) -> None:
    unreadable = b'{"eventType": "invoicing.customer.invoice.send", "payloads": "not a list"}'
    answer = client.post(
        "/webhooks/cybersource", content=unreadable, headers=signed_headers(unreadable)
    )
    assert answer.status_code == 422
    for balance in ("10.00", "9.00"):
        body = encode(invoice_notification("WAIT-1", notification_id="wait-1", balance=balance))
        client.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    eventually(lambda: value(client, "ledger_deliveries_waiting", kind="dead_letter") == 1)
    eventually(lambda: value(client, "ledger_deliveries_waiting", kind="conflict") == 1)


def test_process_metrics_and_the_signing_keys_expiry_are_exported(client: httpx.Client) -> None:
    scraped = samples(client)
    assert scraped[("process_resident_memory_bytes", frozenset())] > 0
    assert scraped[("process_start_time_seconds", frozenset())] > 0
    expiry = datetime(2027, 3, 31, tzinfo=UTC).timestamp()
    assert scraped[("ledger_webhook_key_expiry_timestamp_seconds", frozenset())] == expiry


def test_dead_letters_are_counted_apart_from_refusals_and_no_created_series_doubles_them(
    client: httpx.Client,
) -> None:
    dead_letter = b'{"notificationId": "n-dead", "payloads": [{"data": {}}]}'
    answer = client.post(
        "/webhooks/cybersource", content=dead_letter, headers=signed_headers(dead_letter)
    )
    assert answer.status_code == 422
    assert client.post("/webhooks/cybersource", content=b"{}").status_code == 401
    scraped = samples(client)
    outcome = "ledger_webhook_deliveries_total"
    assert scraped[(outcome, frozenset({("outcome", "dead_letter")}))] == 1
    assert scraped[(outcome, frozenset({("outcome", "rejected")}))] == 1
    assert not [name for name, _ in scraped if name.endswith("_created")]


def test_the_build_is_exported_with_its_version(client: httpx.Client) -> None:
    [(labels, sample)] = [
        (dict(labels), sample)
        for (name, labels), sample in samples(client).items()
        if name == "ledger_build_info"
    ]
    assert sample == 1
    assert labels["version"] == version("invoice-ledger")
    assert labels["python_version"].count(".") == 2
