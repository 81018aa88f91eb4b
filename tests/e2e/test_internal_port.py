"""``serve --internal-port``: the webhook port serves the webhook and the probes alone; /v1,
the console, the metrics and the OpenAPI document are served on the internal port only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import fresh_sqlite_database
from tests.support.process import free_port, start_serve, wait_until_healthy
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

STOP_TIMEOUT_SECONDS = 20
INTERNAL_PATHS = ("/v1/invoices", "/console", "/metrics", "/openapi.json")
PROBE_PATHS = ("/healthz", "/readyz")


@pytest.fixture(params=["option", "environment"])
def two_ports(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The base URLs of the webhook port and of the internal port, which ``serve`` was given
    by its option or by LEDGER_INTERNAL_PORT."""
    port, internal_port = free_port(), free_port()
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_PROJECTOR_ENABLED": "false",
        }
        arguments: tuple[str, ...] = ()
        if request.param == "option":
            arguments = ("--internal-port", str(internal_port))
        else:
            environment["LEDGER_INTERNAL_PORT"] = str(internal_port)
        log_path = tmp_path / "serve.log"
        process = start_serve(environment, port, log_path, *arguments)
        try:
            wait_until_healthy(process, port, log_path)
            yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{internal_port}"
        finally:
            process.terminate()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def test_the_webhook_port_serves_the_webhook_and_the_probes_alone(
    two_ports: tuple[str, str],
) -> None:
    webhook_url, _ = two_ports
    body = encode(invoice_notification("INV-PORTS"))
    delivered = httpx.post(
        f"{webhook_url}/webhooks/cybersource", content=body, headers=signed_headers(body)
    )
    assert delivered.json() == {"status": "accepted"}
    assert httpx.get(f"{webhook_url}/webhooks/cybersource").status_code == 200
    for path in PROBE_PATHS:
        assert httpx.get(f"{webhook_url}{path}").status_code == 200, path
    for path in INTERNAL_PATHS:
        assert httpx.get(f"{webhook_url}{path}").status_code == 404, path


def test_the_internal_port_serves_everything_but_the_webhook(two_ports: tuple[str, str]) -> None:
    _, internal_url = two_ports
    for path in (*INTERNAL_PATHS, *PROBE_PATHS):
        assert httpx.get(f"{internal_url}{path}").status_code == 200, path
    body = encode(invoice_notification("INV-INTERNAL"))
    refused = httpx.post(
        f"{internal_url}/webhooks/cybersource", content=body, headers=signed_headers(body)
    )
    assert refused.status_code == 404


def test_an_internal_port_that_is_the_webhook_port_is_refused(tmp_path: Path) -> None:
    from tests.support.cli import invoice_ledger

    port = free_port()
    result = invoice_ledger(
        "serve", "--port", str(port), "--internal-port", str(port),
        environment={"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "is the webhook port" in result.stderr.decode()
