"""``invoice-ledger serve`` started while its database is away: up, unready, and refusing
deliveries with 503 so that Cybersource retries, until the database is back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import PostgresServer
from tests.support.process import free_port, serving_process
from tests.support.proxy import outage_proxy
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

WEBHOOK_PATH = "/webhooks/cybersource"
TOKEN = "operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECOVERY_TIMEOUT_SECONDS = 30.0


def deliver(client: httpx.Client, invoice_number: str) -> httpx.Response:
    body = encode(invoice_notification(invoice_number, notification_id=invoice_number))
    return client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))


def assert_unavailable_but_alive(client: httpx.Client, reason: str = "connection refused") -> None:
    assert client.get("/healthz").status_code == 200
    unready = client.get("/readyz")
    [problem] = unready.json()["problems"]
    assert (unready.status_code, problem.split(" (")[0]) == (
        503, f"database unavailable: {reason}"
    )  # fmt: skip
    assert unready.headers["Retry-After"].isdigit()
    refused = deliver(client, "INV-DURING")
    assert (refused.status_code, refused.json()["error"]) == (503, "store_unavailable")
    assert refused.headers["Retry-After"].isdigit()


def test_serve_starts_without_its_database_and_answers_503(tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there once the probe socket is closed
    environment = {
        "LEDGER_DATABASE_URL": f"postgresql://ledger@127.0.0.1:{closed_port}/ledger",
        "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
        "LEDGER_PROJECTOR_ENABLED": "true",
    }
    with (
        serving_process(environment, tmp_path / "serve.log") as served,
        httpx.Client(base_url=served.base_url, timeout=30) as client,
    ):
        assert_unavailable_but_alive(client)


@pytest.mark.postgresql
def test_serve_started_without_its_database_accepts_deliveries_once_it_is_back(
    postgresql_database_url: str, tmp_path: Path
) -> None:
    url = make_url(postgresql_database_url)
    with outage_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxy.cut()
        environment = {
            "LEDGER_DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False),
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_PROJECTOR_ENABLED": "true",
        }
        with (
            serving_process(environment, tmp_path / "serve.log") as served,
            httpx.Client(base_url=served.base_url, timeout=30) as client,
        ):
            assert_unavailable_but_alive(client)
            proxy.restore()
            deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, served.log()
                time.sleep(0.2)
            assert deliver(client, "INV-AFTER").json() == {"status": "accepted"}
            assert client.get("/readyz", params={"component": "projector"}).status_code == 200
            answer = client.get("/v1/invoices/INV-AFTER", params={"minPosition": 1})
            assert (answer.status_code, answer.json()["status"]) == (200, "SENT"), answer.text


@pytest.mark.postgresql
def test_serve_with_a_database_that_does_not_exist_says_so_and_recovers_once_it_does(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with postgres_server.database_created_later() as (database_url, create_database):
        name = make_url(database_url).database
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_PROJECTOR_ENABLED": "true",
            "LEDGER_API_TOKENS": f"operator:{TOKEN}",
        }
        with (
            serving_process(environment, tmp_path / "serve.log") as served,
            httpx.Client(base_url=served.base_url, timeout=30, headers=AUTH) as client,
        ):
            assert_unavailable_but_alive(client, f'database "{name}" does not exist')
            listed = client.get("/v1/invoices")
            assert (listed.status_code, listed.json()["error"]) == (503, "store_unavailable")
            assert listed.headers["Retry-After"].isdigit()
            page = client.get("/console/invoices")
            assert page.status_code == 503 and page.headers["Retry-After"].isdigit()
            assert page.headers["content-type"].startswith("text/html")
            assert "cannot be reached" in page.text

            create_database()
            deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, served.log()
                time.sleep(0.2)
            assert deliver(client, "INV-CREATED").json() == {"status": "accepted"}
            answer = client.get("/v1/invoices/INV-CREATED", params={"minPosition": 1})
            assert (answer.status_code, answer.json()["status"]) == (200, "SENT"), answer.text
            assert client.get("/readyz", params={"component": "projector"}).status_code == 200
