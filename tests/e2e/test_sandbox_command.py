"""``invoice-ledger sandbox`` serves the configured organizations and dates webhooks as told."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from bench.harness import free_port, server
from service.cybersource.message_encryption import NotificationKeyring, encrypted_notification
from tests.support.cybersource_sandbox import MERCHANT
from tests.support.encryption import notification_key
from tests.support.receiver import Receiver, receiving_webhooks
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

ENVIRONMENT = {
    "LEDGER_CYBERSOURCE_MERCHANT_ID": MERCHANT.merchant_id,
    "LEDGER_CYBERSOURCE_KEY_ID": MERCHANT.key_id,
    "LEDGER_CYBERSOURCE_SECRET_KEY": base64.b64encode(MERCHANT.secret_key).decode(),
    "LEDGER_CYBERSOURCE_ORGANIZATION_IDS": "child-1,child-2",
    "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with receiving_webhooks() as receiving:
        yield receiving


def test_the_command_serves_each_organization_and_dates_webhooks_before_history(
    receiver: tuple[Receiver, str],
) -> None:
    webhooks, webhook_url = receiver
    port = free_port()
    options = ["--webhook-url", webhook_url, "--event-date-order", "before", "--seed", "4"]
    command = [sys.executable, "-m", "service.fronts.cli", "sandbox", "--port", str(port), *options]
    with (
        server(command, port, ENVIRONMENT, health_path="/sandbox/deliveries"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as sandbox,
    ):
        invoice = {"invoiceNumber": "1", "totalAmount": "5.00", "dueDate": "2026-12-31"}
        first = sandbox.post("/sandbox/invoices", json=invoice)
        second = sandbox.post(
            "/sandbox/invoices?organizationId=child-2", json={**invoice, "status": "SENT"}
        )
        assert (first.status_code, second.status_code) == (201, 201)  # same number, two orgs
        unknown = sandbox.post("/sandbox/invoices?organizationId=elsewhere", json=invoice)
        assert unknown.status_code == 400
        (headers, body), *_ = webhooks.wait_for(1)
    assert headers["v-c-organization-id"] == "child-2"
    sent_at = datetime.fromisoformat(second.json()["invoiceHistory"][0]["date"])
    assert datetime.fromisoformat(body["eventDate"]) < sent_at


def test_the_command_can_leave_the_amounts_out_of_payment_history_entries() -> None:
    port = free_port()
    options = ["--payment-transaction-details", "transaction-id"]
    command = [sys.executable, "-m", "service.fronts.cli", "sandbox", "--port", str(port), *options]
    with (
        server(command, port, ENVIRONMENT, health_path="/sandbox/deliveries"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as sandbox,
    ):
        invoice = {"invoiceNumber": "1", "totalAmount": "5.00", "dueDate": "2026-12-31"}
        sandbox.post("/sandbox/invoices", json={**invoice, "status": "SENT"}).raise_for_status()
        paid = sandbox.post(
            "/sandbox/invoices/1/pay", json={"amount": "5.00", "transactionId": "t"}
        )
    payment = paid.json()["invoiceHistory"][0]
    assert (payment["event"], payment["transactionDetails"]) == ("PAYMENT", {"transactionId": "t"})


def test_the_command_encrypts_notifications_for_a_certificate(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    webhooks, webhook_url = receiver
    key = notification_key("4242")
    certificate = tmp_path / "notifications.crt"
    certificate.write_bytes(key.certificate_pem())
    port = free_port()
    options = ["--webhook-url", webhook_url, "--notification-certificate", str(certificate)]
    command = [sys.executable, "-m", "service.fronts.cli", "sandbox", "--port", str(port), *options]
    with (
        server(command, port, ENVIRONMENT, health_path="/sandbox/deliveries"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as sandbox,
    ):
        invoice = {"invoiceNumber": "9", "totalAmount": "5.00", "dueDate": "2026-12-31"}
        sandbox.post("/sandbox/invoices", json={**invoice, "status": "SENT"}).raise_for_status()
        (_, body), *_ = webhooks.wait_for(1)
    assert set(body) == {"encData"}
    found = encrypted_notification(json.dumps(body).encode())
    assert found is not None
    clear = json.loads(NotificationKeyring([key]).decrypt(found).plaintext)
    assert clear["payloads"][0]["data"]["invoiceNumber"] == "9"


def test_the_command_plays_every_merchant_of_a_merchants_file_with_its_own_webhook_key(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    webhooks, webhook_url = receiver
    secret = base64.b64encode(b"second-merchant-shared-secret-01").decode()
    hook = base64.b64encode(b"a-webhook-signing-key-of-merchant").decode()
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(
        f'[[merchants]]\nid = "first"\nkey_id = "{MERCHANT.key_id}"\n'
        f'secret_key = "{base64.b64encode(MERCHANT.secret_key).decode()}"\n'
        f'webhook_keys = "first-hook:{hook}"\n'
        f'[[merchants]]\nid = "second"\norganizations = ["second", "second-eu"]\n'
        f'key_id = "second-key"\nsecret_key = "{secret}"\nwebhook_keys = "second-hook:{hook}"\n'
    )
    port = free_port()
    command = [sys.executable, "-m", "service.fronts.cli", "sandbox", "--port", str(port),
               "--webhook-url", webhook_url]  # fmt: skip
    with (
        server(command, port, {"LEDGER_MERCHANTS_FILE": str(merchants)}, "/sandbox/deliveries"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as sandbox,
    ):
        invoice = {"invoiceNumber": "1", "totalAmount": "5.00", "dueDate": "2026-12-31",
                   "status": "SENT"}  # fmt: skip
        for organization in ("first", "second-eu"):
            answer = sandbox.post(f"/sandbox/invoices?organizationId={organization}", json=invoice)
            assert answer.status_code == 201, answer.text
        received = webhooks.wait_for(2)
    signers = {
        headers["v-c-organization-id"]: headers["v-c-signature"].split("keyId=")[1].split(";")[0]
        for headers, _ in received
    }
    assert signers == {"first": "first-hook", "second-eu": "second-hook"}
