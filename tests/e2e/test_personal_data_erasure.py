"""Erasing a payer, as an operator does it beside a serving ledger: the payer's name and email
are gone from every answer and from the database, and nothing else changes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from service.bootstrap import command_ledger, rebuild_engines
from service.projections.rebuild import rebuild_invoices
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.personal_data.erasure import Erasure, erase_payer
from tests.support.delivery_log import OPERATOR, READ, ledger, post_delivery
from tests.support.personal_data import MASTER_KEY, every_stored_value
from tests.support.webhooks import encode, invoice_notification

PROJECTION_WAIT_SECONDS = 20.0
ERASED = {"name": None, "email": None, "erased": True}
REPORTS = (
    "/v1/reports/outstanding",
    "/v1/reports/aging?asOf=2023-07-01",
    "/v1/reports/collections?from=2023-05-01&to=2023-07-01",
    "/v1/reports/status",
)


def _deliver(api: httpx.Client) -> None:
    deliveries = [
        invoice_notification("INV-1", balance="100.00", notification_id="n-1"),
        invoice_notification(
            "INV-1", "invoicing.customer.invoice.partial-payment", balance="60.00",
            notification_id="n-2", event_date="2023-05-26T10:00:00.000-07:00",
        ),
        # The same payer, the email written otherwise.
        invoice_notification(
            "INV-3", balance="25.00", notification_id="n-3", emailTo=" TANYA@Example.COM ",
            payerName="T. Lee",
        ),
        invoice_notification(
            "INV-2", balance="40.00", notification_id="n-4", payerName="Bob Stone",
            emailTo="bob@example.org",
        ),
    ]  # fmt: skip
    for notification in deliveries:
        assert post_delivery(api, encode(notification)).json()["status"] == "accepted"


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PROJECTION_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the projector did not catch up"
        time.sleep(0.1)


def _invoice(api: httpx.Client, number: str) -> dict[str, Any]:
    items = api.get(f"/v1/invoices/{number}", headers=READ).json()
    return dict(items["items"][0] if "items" in items else items)


def _answers(api: httpx.Client) -> dict[str, str]:
    answers = {path: api.get(path, headers=READ).text for path in REPORTS}
    for number in ("INV-1", "INV-2", "INV-3"):
        invoice = _invoice(api, number)
        invoice.pop("customer")
        invoice.pop("updatedAt", None)
        answers[number] = json.dumps(invoice, sort_keys=True)
    return answers


async def _erase(url: str, email: str) -> Erasure:
    settings = load_settings(database_url=url, personal_data_key=MASTER_KEY)
    async with command_ledger(settings) as ledger_:
        return await erase_payer(
            ledger_.engine, ledger_.data_keys, ledger_.event_store,
            email=email, name=None, reason="GDPR request #42", recorded_by="cli:test",
        )  # fmt: skip


async def _rebuild(url: str) -> None:
    settings = load_settings(database_url=url, personal_data_key=MASTER_KEY)
    async with command_ledger(settings) as ledger_:
        await rebuild_invoices(
            ledger_.event_store, ledger_.read_models, workers=2,
            engines=rebuild_engines(settings),
        )  # fmt: skip


async def _stored(url: str) -> str:
    engine = create_engine(resolve_database_url(url))
    try:
        return await every_stored_value(engine)
    finally:
        await engine.dispose()


def test_an_erased_payer_is_gone_from_every_answer_and_the_database_and_nothing_else_changes(
    database_url: str,
) -> None:
    with ledger(database_url, personal_data_key=MASTER_KEY) as api:
        _deliver(api)
        _until(lambda: _invoice(api, "INV-2").get("customer") is not None)
        _until(lambda: _invoice(api, "INV-3").get("customer") is not None)
        before = _answers(api)
        stored = asyncio.run(_stored(database_url))
        assert "tanya@example.com" in stored  # the inbox keeps bodies for replay
        erasure = asyncio.run(_erase(database_url, "Tanya@Example.com"))
        assert (erasure.facts, erasure.invoices, erasure.deliveries_redacted) == (3, 2, 3)
        _until(lambda: bool((_invoice(api, "INV-3").get("customer") or {}).get("erased")))

        assert _invoice(api, "INV-1")["customer"] == ERASED
        assert _invoice(api, "INV-3")["customer"] == ERASED
        assert _invoice(api, "INV-2")["customer"] == {
            "name": "Bob Stone", "email": "bob@example.org", "erased": False,
        }  # fmt: skip
        assert _answers(api) == before
        trail = api.get("/v1/invoices/INV-1/events", headers=READ).text
        assert "GDPR request #42" in trail and "PersonalDataErased" in trail
        export = api.get("/v1/invoices?format=csv", headers=READ).text
        assert "tanya" not in export.lower() and "bob stone" in export.lower()
        console = api.get("/console/invoices/INV-1", headers=OPERATOR).text
        assert "tanya" not in console.lower()

        stored = asyncio.run(_stored(database_url))
        for clear in ("tanya", "t. lee", "lee"):
            assert clear not in stored
        assert "bob@example.org" in stored  # another payer's delivery body is kept

        redacted = [
            item
            for item in api.get("/v1/deliveries?limit=50", headers=OPERATOR).json()["items"]
            if item["bodyRedactedAt"] is not None
        ]
        assert len(redacted) == 3 and not any(item["replayable"] for item in redacted)
        refused = api.post(f"/v1/deliveries/{redacted[0]['deliveryId']}/replay", headers=OPERATOR)
        assert refused.status_code >= 400 and "redacted" in refused.text

    asyncio.run(_rebuild(database_url))
    assert "tanya" not in asyncio.run(_stored(database_url))
    with ledger(database_url, personal_data_key=MASTER_KEY) as api:
        assert _invoice(api, "INV-1")["customer"] == ERASED
        assert _answers(api) == before
        # Cybersource retries an old notification: still one fact, and its payer stays
        # erased (the retry's own body is new personal data, kept as any delivery's).
        retry = invoice_notification("INV-1", balance="100.00", notification_id="n-1")
        assert post_delivery(api, encode(retry)).json()["status"] == "duplicate"
        # A new fact names the payer again: they reappear from it alone, under a new key.
        paid = invoice_notification(
            "INV-3", "invoicing.customer.invoice.paid", balance="0.00", notification_id="n-5",
            event_date="2023-06-01T10:00:00.000-07:00",
        )  # fmt: skip
        assert post_delivery(api, encode(paid)).json()["status"] == "accepted"
        _until(lambda: _invoice(api, "INV-3")["status"] == "PAID")
        assert _invoice(api, "INV-3")["customer"]["email"] == "tanya@example.com"
    asyncio.run(_rebuild(database_url))
    with ledger(database_url, personal_data_key=MASTER_KEY) as api:
        assert _invoice(api, "INV-1")["customer"] == ERASED
        assert _invoice(api, "INV-3")["customer"]["name"] == "Tanya Lee"
