"""Without LEDGER_API_TOKENS (``make run``'s local mode) loopback clients read and operate:
no web page the local user opens may do the same, whether by a cross-site request or through
a DNS name rebound to 127.0.0.1. Over a real socket, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)


@pytest.fixture
def local(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING)
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def port_of(client: httpx.Client) -> int:
    port = urlsplit(str(client.base_url)).port
    assert port is not None
    return port


def a_conflict(client: httpx.Client) -> int:
    """A delivery whose version conflicts with the recorded one; its id."""
    for balance in ("40.00", "50.00"):
        body = encode(invoice_notification("INV-L", notification_id="n-local", balance=balance))
        answer = client.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
        assert answer.status_code == 200, answer.text
    [conflict] = client.get("/v1/deliveries", params={"outcome": "conflict"}).json()["items"]
    return int(conflict["deliveryId"])


def operator_events(client: httpx.Client) -> list[str]:
    trail = client.get("/v1/invoices/INV-L/events").json()["items"]
    return [event["source"] for event in trail if event["source"] == "operator"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # a cross-site form or fetch without preflight
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"},
    ],
)
def test_a_cross_site_write_is_refused_and_records_nothing(
    local: httpx.Client, headers: dict[str, str]
) -> None:
    delivery_id = a_conflict(local)
    answer = local.post(
        f"/v1/deliveries/{delivery_id}/corrections",
        content=b'{"reason": "set by a web page"}',
        headers=headers,
    )
    assert answer.status_code in (403, 415), answer.text
    assert answer.json()["error"] in ("cross_origin", "json_required")
    assert operator_events(local) == []


def test_a_same_origin_json_write_is_recorded(local: httpx.Client) -> None:
    delivery_id = a_conflict(local)
    origin = f"http://127.0.0.1:{port_of(local)}"
    answer = local.post(
        f"/v1/deliveries/{delivery_id}/corrections",
        json={"reason": "confirmed with Cybersource"},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 200, answer.text
    assert operator_events(local) == ["operator"]


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "evil.example", "localhost:1", "127.0.0.1.nip.io:{port}"]
)
def test_a_foreign_host_reads_nothing(local: httpx.Client, host: str) -> None:
    """A rebound DNS name reaches the loopback socket with its own name in Host."""
    a_conflict(local)
    for path in ("/v1/invoices", "/v1/deliveries", "/console/invoices?invoiceNumber=INV-L"):
        answer = local.get(path, headers={"Host": host.format(port=port_of(local))})
        assert answer.status_code == 421, (path, answer.text)
        assert "INV-L" not in answer.text and "Tanya" not in answer.text


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST"])
def test_a_loopback_name_with_the_served_port_reads(local: httpx.Client, name: str) -> None:
    answer = local.get("/v1/invoices", headers={"Host": f"{name}:{port_of(local)}"})
    assert answer.status_code == 200, answer.text
