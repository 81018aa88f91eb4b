"""The console over a real socket, as a script with an operator token uses it: the server,
notifications sent to it, and the form token its pages carry."""

from __future__ import annotations

import re
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

TOKEN = "console-pages-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
READER_TOKEN = "console-pages-reader-0123456789"
READER = {"Authorization": f"Bearer {READER_TOKEN}"}


@contextmanager
def console_client(database_url: str, **settings_given: Any) -> Iterator[httpx.Client]:
    """The service with an operator and a read token, and ``settings_given`` besides."""
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        api_tokens=f"operator:{TOKEN},read:{READER_TOKEN}",
        **settings_given,
    )
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def deliver(client: httpx.Client, number: str, **fields: Any) -> None:
    """One signed notification about invoice ``number``, accepted."""
    fields.setdefault("notification_id", f"n-{number}")
    body = encode(invoice_notification(number, **fields))
    answer = client.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert answer.status_code == 200, answer.text


def deliver_raw(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/webhooks/cybersource", content=body, headers=signed_headers(body))


def projected(client: httpx.Client, position: int) -> None:
    """Waits until the read models reflect ``position`` (the list's minPosition does)."""
    answer = client.get("/v1/invoices", params={"minPosition": position}, headers=OPERATOR)
    assert answer.status_code == 200, answer.text


def form_token(page: str) -> str:
    token, *_ = re.findall(r'name="formToken" value="([0-9a-f]+)"', page)
    return str(token)


def posted_from_console(client: httpx.Client) -> dict[str, str]:
    return {**OPERATOR, "Origin": str(client.base_url).rstrip("/")}
