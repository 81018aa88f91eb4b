"""A ledger served with a read token and an operator token, for the delivery log, replays and
corrections: posting deliveries to it, and a notification it keeps whole in its log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from service.app import create_app
from service.settings import load_settings
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

READ_TOKEN = "dashboard-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
# A field the ledger never records: if it appears in an answer, a raw body leaked into it.
BODY_MARKER = "only-in-the-raw-body-7f3a"


@contextmanager
def ledger(database_url: str, **settings: Any) -> Iterator[httpx.Client]:
    loaded = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        api_tokens=f"{READ_TOKEN},operator:{OPERATOR_TOKEN}",
        **settings,
    )
    with (
        serving(create_app(loaded)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def post_delivery(api: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return api.post(
        "/webhooks/cybersource", content=body, headers={**signed_headers(body), **headers}
    )


def two_invoice_notification(notification_id: str) -> bytes:
    """Two invoices in one notification, naming no organization: the header names it."""
    document = invoice_notification("INV-A", notification_id=notification_id)
    item = document["payloads"][0]
    del item["data"]["organizationID"]
    second = json.loads(json.dumps(item))
    second["data"]["invoiceNumber"] = "INV-B"
    document["payloads"] = [item, second]
    document["note"] = BODY_MARKER
    return encode(document)
