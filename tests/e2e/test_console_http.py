"""The console's pages as an HTTP client sees them, over a real socket on both engines: the
headers every answer carries, and pages that must render whatever a delivery held."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, signed_headers

TOKEN = "console-http-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=f"operator:{TOKEN}"
    )
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_the_stylesheet_and_the_redirect_to_sign_in_carry_the_security_headers(
    console: httpx.Client,
) -> None:
    stylesheet = console.get("/console/console.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert_security_headers(stylesheet)
    redirect = console.get("/console/deliveries")
    assert (redirect.status_code, redirect.headers["location"]) == (
        303, "/console/login?next=%2Fconsole%2Fdeliveries"
    )  # fmt: skip
    assert_security_headers(redirect)


def test_a_dead_letter_holding_a_lone_surrogate_escape_is_shown_as_it_came(
    console: httpx.Client,
) -> None:
    body = b'{"notificationId": "n-surrogate", "payloads": [{"data": {"payerName": "\\ud800"}}]}'
    answer = console.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert answer.status_code == 422, answer.text
    [delivery] = console.get("/v1/deliveries", headers=OPERATOR).json()["items"]
    page = console.get(f"/console/deliveries/{delivery['deliveryId']}", headers=OPERATOR)
    assert page.status_code == 200, page.text
    assert "\\ud800" in page.text
    assert_security_headers(page)
