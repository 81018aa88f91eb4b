"""Readiness per component: ingestion stays in the load balancer while the projector is down."""

from __future__ import annotations

import asyncio
import time

import httpx

from service.app import create_app
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.events import invoice_event
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

WEBHOOK_PATH = "/webhooks/cybersource"
STOP_TIMEOUT_SECONDS = 10.0


async def append_poisoned_event(database_url: str) -> None:
    """An event whose stored data the fold cannot read (a due date that is no date)."""
    engine = create_engine(resolve_database_url(database_url))
    try:
        await event_store_for(engine).append(
            [invoice_event("INV-POISON", "poison-1", dueDate="not-a-date")]
        )
    finally:
        await engine.dispose()


def wait_for_projector_stop(client: httpx.Client) -> httpx.Response:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while True:
        answer = client.get("/readyz", params={"component": "projector"})
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_a_poisoned_event_stops_the_projector_while_webhooks_are_still_accepted(
    database_url: str,
) -> None:
    settings = load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING)
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        assert client.get("/readyz", params={"component": "projector"}).status_code == 200
        assert "ledger_projector_up 1.0" in client.get("/metrics").text

        asyncio.run(append_poisoned_event(database_url))
        stopped = wait_for_projector_stop(client)
        assert stopped.status_code == 503
        assert stopped.json() == {
            "status": "unready",
            "problems": ["projector stopped on ValueError; see the logs"],
        }
        assert "not-a-date" not in stopped.text  # the type only, never the stored values
        assert "ledger_projector_up 0.0" in client.get("/metrics").text
        # Counted once the projector's task has ended (after it let go of its lease).
        deadline = time.monotonic() + 5
        while "ledger_projector_errors_total 1.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the projector's stop was never counted"
            time.sleep(0.05)

        assert client.get("/readyz").json() == {"status": "ready"}
        body = encode(invoice_notification("INV-AFTER-POISON"))
        accepted = client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
        assert (accepted.status_code, accepted.json()) == (200, {"status": "accepted"})
        assert client.get("/readyz").status_code == 200


def test_readiness_of_an_unknown_component_is_a_client_error(client: httpx.Client) -> None:
    assert client.get("/readyz", params={"component": "reporting"}).status_code == 400
