"""Concurrent deliveries over a real socket are appended in groups: every 200 is stored, once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.webhooks import encode, invoice_notification, signed_headers

pytestmark = pytest.mark.anyio

NOTIFICATIONS = 120
CONCURRENT_REQUESTS = 32


async def test_every_acknowledged_concurrent_delivery_is_stored_exactly_once(
    base_url: str, database_url: str
) -> None:
    bodies = [
        encode(invoice_notification(f"GC-{index % 40}", notification_id=f"gc-{index}"))
        for index in range(NOTIFICATIONS)
    ]
    deliveries = bodies + bodies[::3]  # a third of them delivered twice, concurrently
    limit = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def deliver(client: httpx.AsyncClient, body: bytes) -> tuple[int, str]:
        async with limit:
            response = await client.post(
                "/webhooks/cybersource", content=body, headers=signed_headers(body)
            )
        return response.status_code, response.json()["status"]

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        answers = await asyncio.gather(*(deliver(client, body) for body in deliveries))

    assert {status for status, _ in answers} == {200}
    statuses = [status for _, status in answers]
    assert statuses.count("accepted") == NOTIFICATIONS
    assert statuses.count("duplicate") == len(deliveries) - NOTIFICATIONS
    engine = create_engine(resolve_database_url(database_url))
    try:
        store = event_store_for(engine)
        stored = await store.read_after(0, limit=1000)
        inbox = await store.inbox_entries(limit=1000)
    finally:
        await engine.dispose()
    assert len(stored) == NOTIFICATIONS
    assert len({event.idempotency_key for event in stored}) == NOTIFICATIONS
    versions: dict[str, list[int]] = {}
    for event in stored:
        versions.setdefault(event.stream_id, []).append(event.version)
    assert all(found == list(range(1, len(found) + 1)) for found in versions.values())
    assert len(inbox) == len(deliveries)
