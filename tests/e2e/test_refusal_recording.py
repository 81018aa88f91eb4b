"""A flood of refused deliveries writes at most the recording rate to the inbox; the rest is
counted, so the database does not grow with the flood."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.app import create_app
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.schema import inbox
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

RECORDED_PER_SECOND = 5
FLOOD_DELIVERIES = 120


def metric(exposition: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


async def inbox_rows(database_url: str) -> int:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with engine.connect() as connection:
            counted = await connection.execute(select(func.count()).select_from(inbox))
            return int(counted.scalar_one())
    finally:
        await engine.dispose()


def test_a_refusal_flood_records_at_most_the_rate_and_counts_the_rest(database_url: str) -> None:
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        refusals_recorded_per_second=RECORDED_PER_SECOND,
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        started = time.monotonic()
        for _ in range(FLOOD_DELIVERIES):
            assert client.post("/webhooks/cybersource", content=b"{}").status_code == 401
        elapsed_seconds = time.monotonic() - started
        exposition = client.get("/metrics").text

    recorded = asyncio.run(inbox_rows(database_url))
    # One second's worth saved up, then the rate.
    allowed = RECORDED_PER_SECOND * (1 + elapsed_seconds) + 1
    assert RECORDED_PER_SECOND <= recorded <= allowed
    assert recorded < FLOOD_DELIVERIES
    not_recorded = metric(
        exposition, "ledger_refusals_not_recorded_total", reason="missing_signature"
    )
    assert not_recorded == FLOOD_DELIVERIES - recorded
    rejected = metric(exposition, "ledger_webhook_deliveries_total", outcome="rejected")
    assert rejected == FLOOD_DELIVERIES
