"""Cybersource (the sandbox) and the ledger, each on its own socket: random invoice lifecycles
whose webhooks are partly lost, duplicated and reordered; after a sweep the ledger matches."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from service.app import create_app
from service.reconciler.client import CybersourceClient
from service.reconciler.reconciler import Reconciler
from service.sandbox.app import create_sandbox_app
from service.sandbox.deliveries import DeliveryFaults, RetryPolicy, WebhookDeliveries, WebhookTarget
from service.sandbox.event_dates import EventDateOrder, EventTiming
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.cybersource_sandbox import FAST, MERCHANT
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEY,
    WEBHOOK_KEY_ID,
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

FAULTS = DeliveryFaults(
    drop_share=0.25, duplicate_share=0.25, delay_share=0.5, delay_seconds_max=0.3, seed=7
)
QUICK_RETRIES = RetryPolicy(seconds_per_minute=0.02)
# Every webhook dated a millisecond after its history entry: the order the ledger's fold
# assumes today. The sandbox's default draws before, equal and after, milliseconds to minutes.
WEBHOOKS_JUST_AFTER_HISTORY = EventTiming(
    offset_seconds_min=0.001, offset_seconds_max=0.001, order=EventDateOrder.AFTER
)


def play_lifecycles(sandbox: httpx.Client, invoices: int, seed: int) -> None:
    rng = random.Random(seed)
    for number in range(invoices):
        invoice = f"S-{number}"
        total = Decimal(rng.randrange(1_000, 50_000)) / 100
        sandbox.post(
            "/sandbox/invoices",
            json={
                "invoiceNumber": invoice,
                "totalAmount": str(total),
                "currency": "USD",
                "dueDate": "2026-12-31",
                "allowPartialPayments": True,
                "customerName": f"Customer {number}",
            },
        ).raise_for_status()
        if rng.random() < 0.1:
            continue  # stays a draft
        sandbox.post(f"/sandbox/invoices/{invoice}/{rng.choice(['publish', 'send'])}")
        path = rng.choice(["pay-once", "pay-twice", "cancel", "resend", "leave"])
        balance = total
        if path in ("pay-once", "pay-twice", "resend"):
            first = balance if path == "pay-once" else (balance / 3).quantize(Decimal("0.01"))
            pay(sandbox, invoice, first, f"{invoice}-tx1")
            balance -= first
            if path == "resend":
                sandbox.post(f"/sandbox/invoices/{invoice}/send").raise_for_status()
            elif path == "pay-twice":
                pay(sandbox, invoice, balance, f"{invoice}-tx2")
        elif path == "cancel":
            sandbox.post(f"/sandbox/invoices/{invoice}/cancel").raise_for_status()


def pay(sandbox: httpx.Client, invoice: str, amount: Decimal, transaction_id: str) -> None:
    answer = sandbox.post(
        f"/sandbox/invoices/{invoice}/pay",
        json={"amount": str(amount), "transactionId": transaction_id},
    )
    answer.raise_for_status()


def wait_for(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_random_lifecycles_with_lost_duplicated_and_reordered_webhooks_match_after_a_sweep(
    database_url: str,
) -> None:
    lifecycles_match_after_a_sweep(database_url, WEBHOOKS_JUST_AFTER_HISTORY)


def test_lifecycles_match_after_a_sweep_however_webhooks_are_dated(database_url: str) -> None:
    lifecycles_match_after_a_sweep(database_url, EventTiming(seed=11))


def lifecycles_match_after_a_sweep(database_url: str, timing: EventTiming) -> None:
    settings = load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING)
    with serving(create_app(settings)) as ledger_url:
        target = WebhookTarget(f"{ledger_url}/webhooks/cybersource", WEBHOOK_KEY_ID, WEBHOOK_KEY)
        deliveries = WebhookDeliveries(target, QUICK_RETRIES, FAULTS, timing=timing)
        with (
            serving(create_sandbox_app([MERCHANT], deliveries=deliveries)) as sandbox_url,
            httpx.Client(base_url=sandbox_url, timeout=30) as sandbox,
            httpx.Client(base_url=ledger_url, timeout=30) as ledger,
        ):
            play_lifecycles(sandbox, invoices=16, seed=3)
            wait_for(lambda: sandbox.get("/sandbox/deliveries").json()["pending"] == 0, 30)
            log = sandbox.get("/sandbox/deliveries").json()
            assert log["dropped"] > 0 and log["acknowledged"] > 0
            # The log lists each notification with what became of it, and the counts agree.
            outcomes = [entry["outcome"] for entry in log["notifications"]]
            assert outcomes.count("dropped") == log["dropped"]
            assert set(outcomes) <= {"acknowledged", "dropped", "failed"}
            acknowledged = [e for e in log["notifications"] if e["outcome"] == "acknowledged"]
            assert all(entry["lastStatus"] == 200 and entry["attempts"] >= 1
                       for entry in acknowledged)  # fmt: skip
            assert {entry["invoiceNumber"] for entry in acknowledged} <= {
                f"S-{number}" for number in range(16)
            }

            summary = asyncio.run(sweep(sandbox_url, database_url))
            assert summary.failed == 0 and summary.checked == 16
            position = asyncio.run(last_position(database_url))
            ledger.get("/v1/reports/status", params={"minPosition": position}).raise_for_status()
            collected = Decimal(0)
            for number in range(16):
                truth = asyncio.run(details(sandbox_url, f"S-{number}"))
                mine = ledger.get(f"/v1/invoices/S-{number}").json()
                amounts = truth["orderInformation"]["amountDetails"]
                assert mine["status"] == truth["status"], number
                assert Decimal(mine["totalAmount"]) == Decimal(amounts["totalAmount"])
                assert Decimal(mine["balanceAmount"]) == Decimal(amounts["balanceAmount"])
                paid = [
                    h["transactionDetails"]
                    for h in truth["invoiceHistory"]
                    if h["event"] == "PAYMENT"
                ]
                assert sorted(p["transactionId"] for p in mine["payments"]) == sorted(
                    p["transactionId"] for p in paid
                )
                collected += sum((Decimal(p["amount"]) for p in paid), Decimal(0))
            today = datetime.now(UTC).date()
            report = ledger.get(
                "/v1/reports/collections",
                params={
                    "from": f"{today.year - 1}-01-01",
                    "to": f"{today.year + 1}-12-31",
                    "interval": "month",
                },
            ).json()
            assert sum(Decimal(item["amount"]) for item in report["items"]) == collected


async def sweep(sandbox_url: str, database_url: str) -> Any:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
            return await Reconciler(client, event_store_for(engine)).sweep()
    finally:
        await engine.dispose()


async def last_position(database_url: str) -> int:
    engine = create_engine(resolve_database_url(database_url))
    try:
        return await event_store_for(engine).last_position()
    finally:
        await engine.dispose()


async def details(sandbox_url: str, invoice: str) -> dict[str, Any]:
    async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
        return await client.get_invoice(invoice)


def test_the_serving_reconciler_fills_in_what_a_webhook_leaves_out(database_url: str) -> None:
    """A send notification carries no total; the ledger asks Cybersource by itself."""
    with serving(create_sandbox_app([MERCHANT])) as sandbox_url:
        settings = load_settings(
            database_url=database_url,
            webhook_keys=WEBHOOK_KEYS_SETTING,
            cybersource_base_url=sandbox_url,
            cybersource_merchant_id=MERCHANT.merchant_id,
            cybersource_key_id=MERCHANT.key_id,
            cybersource_secret_key=base64.b64encode(MERCHANT.secret_key).decode(),
        )
        with serving(create_app(settings)) as ledger_url, httpx.Client(timeout=30) as http:
            http.post(
                f"{sandbox_url}/sandbox/invoices",
                json={
                    "invoiceNumber": "W-1",
                    "totalAmount": "42.00",
                    "currency": "USD",
                    "dueDate": "2026-12-31",
                },
            ).raise_for_status()
            http.post(f"{sandbox_url}/sandbox/invoices/W-1/send").raise_for_status()
            body = encode(
                invoice_notification("W-1", balance="42.00", organizationID=MERCHANT.merchant_id)
            )
            delivered = http.post(
                f"{ledger_url}/webhooks/cybersource", content=body, headers=signed_headers(body)
            )
            assert delivered.json() == {"status": "accepted"}

            def sources() -> set[str]:
                events = http.get(f"{ledger_url}/v1/invoices/W-1/events").json()["items"]
                return {event["source"] for event in events}

            def total_known() -> bool:
                invoice = http.get(f"{ledger_url}/v1/invoices/W-1")
                return invoice.status_code == 200 and invoice.json()["totalAmount"] == "42.00"

            wait_for(lambda: "reconciler" in sources(), 20)
            wait_for(total_known, 20)
            assert sources() == {"webhook", "reconciler"}
