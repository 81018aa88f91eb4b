"""Every line the service writes to stderr is one JSON object: its own, uvicorn's, Alembic's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.process import free_port
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

STARTUP_TIMEOUT_SECONDS = 30.0
# Signed, but no invoice data: kept whole as a dead letter.
DEAD_LETTER = (
    b'{"notificationId": "n-dead-1", "eventType": "invoicing.customer.invoice.paid",'
    b' "payloads": [{"data": {"invoiceNumber": "INV-DEAD-1", "balanceAmount": "lots"}}]}'
)


def test_every_line_from_migrate_to_shutdown_is_json(tmp_path: Path) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
        "LEDGER_PROJECTOR_ENABLED": "true",
        # Accepted deliveries are logged at DEBUG (the deliveries metric counts them at INFO).
        "LEDGER_LOG_LEVEL": "DEBUG",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "migrate"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)],
            env=environment,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                assert httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        body = encode(invoice_notification("LOG-1", notification_id="LOG-1"))
        with httpx.Client(base_url=base_url, timeout=10) as client:
            accepted = client.post(
                "/webhooks/cybersource", content=body, headers=signed_headers(body)
            )
            refused = client.post("/webhooks/cybersource", content=b"{}")
            dead_letter = client.post(
                "/webhooks/cybersource", content=DEAD_LETTER, headers=signed_headers(DEAD_LETTER)
            )
            traced = client.get("/readyz", headers={"X-Request-Id": "trace-0123456789"})
        assert (accepted.status_code, refused.status_code, dead_letter.status_code) == (
            200, 401, 422
        )  # fmt: skip
        assert traced.headers["x-request-id"] == "trace-0123456789"
        assert len(accepted.headers["x-request-id"]) == 32  # a new one when none was sent
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()

    lines = [line for line in (migrated.stderr + log_path.read_text()).splitlines() if line]
    parsed = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    assert all(
        isinstance(entry, dict) and "event" in entry and "level" in entry for entry in parsed
    )
    events = {entry["event"] for entry in parsed}
    # The lines come from every source: Alembic, uvicorn, the service, and its shutdown.
    assert any(event.startswith("Running upgrade") for event in events)
    assert "Application startup complete." in events
    assert {"migrate.at_head", "webhook.accepted", "webhook.refused", "server.stopped"} <= events
    # A dead letter's line names what an alert links to: the delivery, notification, invoice.
    [dead] = [entry for entry in parsed if entry["event"] == "webhook.dead_letter"]
    assert (dead["notification_id"], dead["invoice_number"]) == ("n-dead-1", "INV-DEAD-1")
    assert isinstance(dead["delivery_id"], int)
    # One access line per request, by route template, under the request's id.
    access = [entry for entry in parsed if entry["event"] == "http.request"]
    assert {(entry["route"], entry["status"]) for entry in access} >= {
        ("/webhooks/cybersource", 200), ("/webhooks/cybersource", 401),
        ("/webhooks/cybersource", 422), ("/readyz", 200),
    }  # fmt: skip
    [readiness] = [entry for entry in access if entry["request_id"] == "trace-0123456789"]
    assert readiness["route"] == "/readyz"
    assert dead["request_id"] in {entry["request_id"] for entry in access}
