"""The live append on PostgreSQL without HTTP: CPU per delivery in this process and in
PostgreSQL, for the columns function the service calls, beside the JSON-document function it
replaced (``ledger_append_group``, loaded into the same throwaway database from its migration
text), in alternating rounds of one run.

    python -m bench.append [--deliveries 20000] [--group 32] [--rounds 3]

Each round appends fresh webhook deliveries (one fact and one inbox row each, about the size
the receiver stores) in groups, one group after another, as the group committer's writer
does; one delivery in twenty repeats an earlier one (a retry). A warm-up of each way comes
first, unmeasured. Figures are CPU seconds from
``/proc`` (this process, and PostgreSQL's processes serving the bench database), which the
machine's load moves far less than wall time; medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness import migrated_database, signed_delivery
from bench.ingest import cpu_between, postgres_cpu, process_cpu
from service.domain.events import EventSource, InvoiceEventType, NewEvent
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import (
    APPEND_LOCK_KEY,
    STREAM_LOCK_CLASS,
    Delivery,
    InboxEntry,
    content_digest,
    inbox_row,
)
from service.store.events.postgres import PostgresEventStore

REPLACED_FUNCTION = (
    Path(__file__).resolve().parents[1] / "migrations/sql/ledger_append_group_lock_keys.sql"
)
REPLACED_CALL = "SELECT ledger_append_group($1::jsonb, $2::bigint, $3::integer)::text"
RETRY_EVERY = 20


def deliveries(count: int) -> list[Delivery]:
    made: list[Delivery] = []
    for number in range(count):
        if number % RETRY_EVERY == RETRY_EVERY - 1:
            made.append(made[number // 2])
            continue
        body, headers = signed_delivery()
        envelope = json.loads(body)
        data = {**envelope["payloads"][0]["data"], "notificationId": envelope["notificationId"]}
        event = NewEvent(
            stream_id=data["invoiceNumber"],
            type=InvoiceEventType.INVOICE_PARTIALLY_PAID,
            occurred_at=datetime.now(UTC),
            source=EventSource.WEBHOOK,
            idempotency_key=f"cybersource:notification:{envelope['notificationId']}",
            data=data,
        )
        entry = InboxEntry(
            received_at=datetime.now(UTC),
            notification_id=envelope["notificationId"],
            event_type=envelope["eventType"],
            key_id="bench",
            signed_content="body",
            retry_count=0,
            trace_id=uuid.uuid4().hex,
            body=body,
            headers=headers,
            signed_at=datetime.now(UTC),
            organization_id="bench",
        )
        made.append(Delivery([event], entry))
    return made


def replaced_document(delivery: Delivery, recorded_at: datetime) -> dict[str, Any]:
    """One element of the replaced function's JSON argument, as the service built it."""
    assert delivery.inbox_entry is not None
    row = inbox_row(delivery.inbox_entry, None, None)
    body = row.pop("body")
    row["body_base64"] = base64.b64encode(body).decode() if body is not None else None
    for column in ("received_at", "signed_at"):
        if row[column] is not None:
            row[column] = row[column].isoformat()
    return {
        "events": [
            {
                "stream_id": event.stream_id,
                "type": event.type,
                "schema_version": event.schema_version,
                "occurred_at": event.occurred_at.isoformat(),
                "recorded_at": recorded_at.isoformat(),
                "source": event.source.value,
                "idempotency_key": event.idempotency_key,
                "content_digest": content_digest(event),
                "data": event.data,
            }
            for event in delivery.events
        ],
        "delivery": row,
    }


async def append_with_replaced_function(
    store: PostgresEventStore, group: Sequence[Delivery]
) -> None:
    recorded_at = datetime.now(UTC)
    argument = json.dumps([replaced_document(delivery, recorded_at) for delivery in group])
    async with store._engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        json.loads(
            await driver.fetchval(REPLACED_CALL, argument, APPEND_LOCK_KEY, STREAM_LOCK_CLASS)
        )


async def measure(
    database_url: str, way: str, made: list[Delivery], group_size: int
) -> dict[str, float]:
    engine = create_engine(resolve_database_url(database_url))
    store = PostgresEventStore(engine)
    database = database_url.rsplit("/", 1)[1]
    try:
        await store.highest_position()  # the pool's first connection, outside the figures
        groups = [made[start : start + group_size] for start in range(0, len(made), group_size)]
        postgres_before, process_before = postgres_cpu(database), process_cpu_now()
        started = time.perf_counter()
        for group in groups:
            if way == "columns":
                await store.append_group(group)
            else:
                await append_with_replaced_function(store, group)
        seconds = time.perf_counter() - started
        process_seconds = process_cpu_now() - process_before
        postgres_seconds = cpu_between(postgres_before, postgres_cpu(database))
    finally:
        await engine.dispose()
    return {
        "deliveries_per_second": len(made) / seconds,
        "process_cpu_us": process_seconds / len(made) * 1e6,
        "postgres_cpu_us": postgres_seconds / len(made) * 1e6,
    }


def process_cpu_now() -> float:
    return process_cpu(os.getpid()) or 0.0


async def install_replaced_function(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(REPLACED_FUNCTION.read_text())
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=5000, help="deliveries each way, untimed, before the rounds"
    )
    arguments = parser.parse_args()
    figures: dict[str, list[dict[str, float]]] = {"columns": [], "replaced": []}
    with migrated_database("bench_append") as (database_url, _):
        asyncio.run(install_replaced_function(database_url))
        # The first appends into an empty database grow its files and caches: not measured.
        for way in ("columns", "replaced"):
            asyncio.run(measure(database_url, way, deliveries(arguments.warmup), arguments.group))
        for round_number in range(arguments.rounds):
            for way in ("replaced", "columns") if round_number % 2 else ("columns", "replaced"):
                made = deliveries(arguments.deliveries)
                figures[way].append(asyncio.run(measure(database_url, way, made, arguments.group)))
                print(way, {k: round(v, 1) for k, v in figures[way][-1].items()}, flush=True)
    print(
        f"\nmedians of {arguments.rounds} rounds, {arguments.deliveries} deliveries in groups"
        f" of {arguments.group}:"
    )
    for way, rounds in figures.items():
        medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(
            f"  {way:9} {medians['deliveries_per_second']:8,.0f} deliveries/s"
            f"  process {medians['process_cpu_us']:6,.0f} µs"
            f"  PostgreSQL {medians['postgres_cpu_us']:6,.0f} µs per delivery"
        )


if __name__ == "__main__":
    main()
