"""Exact money, end to end: random invoice lifecycles driven through the sandbox's documented
REST API for two organizations of one portfolio (sharing invoice numbers), in USD, JPY and a
three-decimal currency, with several payers, updates before payment, reviews accepted and
rejected, and cancellations. Webhooks are dated before, at or after their history entries
(milliseconds to minutes) and 30% are lost, duplicated or reordered.

Before the sweep no invoice has collected more confirmed money than was paid; after one sweep
every invoice, and the collections per day and currency, equal Cybersource's to the cent."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.cybersource.http_signature import MerchantCredentials, http_date, sign_request
from service.cybersource.keys import CertifiedKey
from service.cybersource.message_encryption import Shape
from service.domain.identity import invoices_in_stream
from service.domain.invoice import fold
from service.reconciler.client import CybersourceClient
from service.reconciler.reconciler import Reconciler
from service.sandbox.app import create_sandbox_app
from service.sandbox.deliveries import DeliveryFaults, RetryPolicy, WebhookDeliveries, WebhookTarget
from service.sandbox.event_dates import EventTiming
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.cybersource_sandbox import FAST
from tests.support.encryption import KEY_PASSWORD, key_files, notification_key
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEY, WEBHOOK_KEY_ID, WEBHOOK_KEYS_SETTING

ORGANIZATIONS = ("org-a", "org-b")
PORTFOLIO = MerchantCredentials(
    merchant_id="portfolio",
    key_id="7d0e3b8c-1f2a-4c5d-9e8f-0a1b2c3d4e5f",
    secret_key=b"portfolio-shared-secret-76543210",
    organization_ids=ORGANIZATIONS,
)
CURRENCIES = {"USD": Decimal("0.01"), "JPY": Decimal("1"), "KWD": Decimal("0.001")}
INVOICES_PER_ORGANIZATION = 12
# 30% of notifications lost, duplicated or held back (so that they arrive out of order).
FAULTS = DeliveryFaults(
    drop_share=0.1, duplicate_share=0.1, delay_share=0.1, delay_seconds_max=0.3, seed=5
)
QUICK_RETRIES = RetryPolicy(seconds_per_minute=0.02)


class Cybersource:
    """The merchant's side: signed REST calls for one organization, and the customer's
    payments on the hosted page (the sandbox's helpers)."""

    def __init__(self, http: httpx.Client, organization_id: str) -> None:
        self.http = http
        self.organization_id = organization_id

    def call(self, method: str, path: str, document: Any = None) -> dict[str, Any]:
        body = b"" if document is None else json.dumps(document).encode()
        headers = sign_request(
            PORTFOLIO,
            method=method,
            host=self.http.base_url.netloc.decode(),
            path_and_query=path,
            date=http_date(time.time()),
            body=body,
            organization_id=self.organization_id,
        )
        answer = self.http.request(method, path, content=body, headers=headers)
        assert answer.status_code < 300, answer.text
        return dict(answer.json(parse_float=Decimal))

    def customer(self, number: str, action: str, document: Any = None) -> None:
        answer = self.http.post(
            f"/sandbox/invoices/{number}/{action}",
            params={"organizationId": self.organization_id},
            json=document,
        )
        assert answer.status_code < 300, answer.text


def invoice_document(number: str, total: Decimal, currency: str, **information: Any) -> Any:
    return {
        "customerInformation": {"name": f"Customer {number}", "email": f"c{number}@example.com"},
        "invoiceInformation": {
            "invoiceNumber": number,
            "description": "Services",
            "dueDate": "2026-12-31",
            "allowPartialPayments": True,
            "deliveryMode": "email",
            **information,
        },
        "orderInformation": {"amountDetails": {"totalAmount": str(total), "currency": currency}},
    }


def play(cybersource: Cybersource, number: str, rng: random.Random) -> None:
    """One invoice's random lifecycle, within Cybersource's rules."""
    currency = rng.choice(list(CURRENCIES))
    quantum = CURRENCIES[currency]
    total = quantum * rng.randrange(2_000, 90_000)
    cybersource.call("POST", "/invoicing/v2/invoices", invoice_document(number, total, currency))
    path = f"/invoicing/v2/invoices/{number}"
    if rng.random() < 0.1:
        return  # stays a draft
    if rng.random() < 0.5:
        cybersource.call("POST", f"{path}/publication")
    cybersource.call("POST", f"{path}/delivery")
    if rng.random() < 0.4:  # updated after sending, before any payment: no notification
        total = quantum * rng.randrange(2_000, 90_000)
        cybersource.call("PUT", path, invoice_document(number, total, currency))
    if rng.random() < 0.15:
        cybersource.call("POST", f"{path}/cancelation")
        return
    balance = total
    for payer in range(rng.randrange(0, 4)):
        if balance == 0:
            break
        last = payer == 2 or rng.random() < 0.3
        amount = balance if last else quantum * rng.randrange(1, int(balance / quantum) + 1)
        payment = {
            "amount": str(amount),
            "transactionId": f"{cybersource.organization_id}-{number}-{payer}",
        }
        if rng.random() < 0.25:
            cybersource.customer(number, "pending", payment)
            if rng.random() < 0.4:
                cybersource.customer(number, "reject")
                continue
            cybersource.customer(number, "accept")
        else:
            cybersource.customer(number, "pay", payment)
        balance -= amount
    if balance > 0 and rng.random() < 0.3:
        cybersource.customer(number, "remind")


# org-a's notifications go encrypted (about half of all), for two keys at once (a rotation)
# and in two shapes; org-b's stay clear.
ENCRYPTED_EVENT_TYPES = (
    (("send", "cancel"), Shape.ENC_DATA),
    (("paid", "partial-payment", "reminder", "overdue-reminder"), Shape.PAYLOAD),
)


def encrypt_half_of_the_notifications(sandbox: Any, keys: list[CertifiedKey]) -> None:
    for key, (event_types, shape) in zip(keys, ENCRYPTED_EVENT_TYPES, strict=True):
        sandbox.register_notification_certificate(
            ORGANIZATIONS[0],
            key.certificate_pem(),
            [f"invoicing.customer.invoice.{event_type}" for event_type in event_types],
            shape,
        )


@pytest.mark.parametrize(
    ("seed", "encrypted"), [(2, False), (3, False), (20261122, False), (7, True)]
)
def test_the_ledger_agrees_with_cybersource_to_the_cent_whatever_the_timing(
    database_url: str, seed: int, encrypted: bool, tmp_path: Path
) -> None:
    keys = [notification_key("5550001"), notification_key("5550002")] if encrypted else []
    decryption = (
        {
            "notification_decryption_keys": key_files(tmp_path, *keys),
            "notification_decryption_key_password": KEY_PASSWORD,
        }
        if keys
        else {}
    )
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, **decryption
    )
    with serving(create_app(settings)) as ledger_url:
        target = WebhookTarget(f"{ledger_url}/webhooks/cybersource", WEBHOOK_KEY_ID, WEBHOOK_KEY)
        deliveries = WebhookDeliveries(
            target, QUICK_RETRIES, replace(FAULTS, seed=seed), timing=EventTiming(seed=seed)
        )
        sandbox_app = create_sandbox_app([PORTFOLIO], deliveries=deliveries)
        if keys:
            encrypt_half_of_the_notifications(sandbox_app.state.sandbox, keys)
        with (
            serving(sandbox_app) as sandbox_url,
            httpx.Client(base_url=sandbox_url, timeout=30) as sandbox,
            httpx.Client(base_url=ledger_url, timeout=30) as ledger,
        ):
            rng = random.Random(seed)
            for organization in ORGANIZATIONS:
                for index in range(INVOICES_PER_ORGANIZATION):
                    play(Cybersource(sandbox, organization), str(1001 + index), rng)
            wait_for(lambda: sandbox.get("/sandbox/deliveries").json()["pending"] == 0, 60)
            log = sandbox.get("/sandbox/deliveries").json()
            assert log["dropped"] > 0 and log["acknowledged"] > 0
            if keys:
                assert_encrypted_notifications_were_decrypted(ledger.get("/metrics").text)

            truths = asyncio.run(everything_cybersource_knows(sandbox_url))
            asyncio.run(assert_no_invoice_collected_more_than_was_paid(database_url, truths))

            summary = asyncio.run(sweep(sandbox_url, database_url))
            assert summary.failed == 0
            assert summary.checked == len(ORGANIZATIONS) * INVOICES_PER_ORGANIZATION
            position = asyncio.run(last_position(database_url))

            for (organization, number), truth in truths.items():
                mine = ledger.get(
                    f"/v1/invoices/{number}",
                    params={"organizationId": organization, "minPosition": position},
                ).json()
                amounts = truth["orderInformation"]["amountDetails"]
                assert (mine["organizationId"], mine["status"]) == (organization, truth["status"])
                assert Decimal(mine["totalAmount"]) == amounts["totalAmount"], (
                    organization,
                    number,
                )
                assert Decimal(mine["balanceAmount"]) == amounts["balanceAmount"]
                assert mine["currency"] == amounts["currency"]

            expected = collections_by_day_and_currency(truths)
            days = sorted(day for day, _ in expected)
            answer = ledger.get(
                "/v1/reports/collections",
                params={
                    "from": days[0].isoformat(),
                    "to": days[-1].isoformat(),
                    "interval": "day",
                },
            ).json()
            reported = {
                (date.fromisoformat(item["period"]), item["currency"]): Decimal(item["amount"])
                for item in answer["items"]
            }
            assert reported == expected
            assert not any(item["incomplete"] for item in answer["items"])


def assert_encrypted_notifications_were_decrypted(metrics: str) -> None:
    counted = {
        line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ledger_notification_decryptions_total{")
    }
    # Both keys decrypted some, and nothing failed to decrypt.
    assert len(counted) == 2 and all('outcome="decrypted"' in name for name in counted), counted
    assert all(count > 0 for count in counted.values()), counted


def wait_for(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def engine_for(database_url: str) -> Any:
    return create_engine(resolve_database_url(database_url))


async def last_position(database_url: str) -> int:
    engine = engine_for(database_url)
    try:
        return await event_store_for(engine).last_position()
    finally:
        await engine.dispose()


async def everything_cybersource_knows(sandbox_url: str) -> dict[tuple[str, str], Any]:
    truths = {}
    async with CybersourceClient(sandbox_url, PORTFOLIO, FAST) as client:
        for organization in ORGANIZATIONS:
            for index in range(INVOICES_PER_ORGANIZATION):
                number = str(1001 + index)
                truths[(organization, number)] = await client.get_invoice(number, organization)
    return truths


def payments(truth: Any) -> list[Any]:
    return [entry for entry in truth["invoiceHistory"] if entry["event"] == "PAYMENT"]


async def assert_no_invoice_collected_more_than_was_paid(
    database_url: str, truths: dict[tuple[str, str], Any]
) -> None:
    engine = engine_for(database_url)
    store = event_store_for(engine)
    try:
        for (organization, number), truth in truths.items():
            stream = await store.read_stream(number)
            grouped = invoices_in_stream(number, stream)
            events = next(
                (e for key, e in grouped.items() if key.organization_id == organization), []
            )
            state = fold(number, events, organization)
            # Provisional collections are figures inferred from notifications alone, labelled
            # as such; what the ledger states as confirmed never exceeds what was paid.
            collected = sum(
                (c.amount for c in state.collections if c.amount and not c.provisional),
                Decimal(0),
            )
            paid = sum(
                (Decimal(p["transactionDetails"]["amount"]) for p in payments(truth)), Decimal(0)
            )
            # On failure, the stream and Cybersource's history say which timing did it.
            assert collected <= paid, (organization, number, truth["invoiceHistory"], stream)
    finally:
        await engine.dispose()


async def sweep(sandbox_url: str, database_url: str) -> Any:
    engine = engine_for(database_url)
    try:
        async with CybersourceClient(sandbox_url, PORTFOLIO, FAST) as client:
            return await Reconciler(client, event_store_for(engine), ORGANIZATIONS).sweep()
    finally:
        await engine.dispose()


def collections_by_day_and_currency(truths: dict[tuple[str, str], Any]) -> dict[Any, Decimal]:
    totals: dict[Any, Decimal] = defaultdict(Decimal)
    for truth in truths.values():
        currency = truth["orderInformation"]["amountDetails"]["currency"]
        for payment in payments(truth):
            day = date.fromisoformat(payment["date"][:10])
            totals[(day, currency)] += Decimal(payment["transactionDetails"]["amount"])
    return dict(totals)
