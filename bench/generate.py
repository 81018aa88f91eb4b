"""A data generator: realistic invoice histories written straight into the event store.

Deliveries through the receiver are measured by bench.ingest; here the aim is volume, so
events are COPYed in. Each invoice is sent; 30% are then partially paid and a third of those
paid in full, so one million invoices make about 1.4 million events.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

START = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = (
    "stream_id", "version", "type", "schema_version", "occurred_at", "recorded_at",
    "source", "idempotency_key", "content_digest", "data",
)  # fmt: skip
CURRENCIES = ("USD", "USD", "USD", "EUR", "GBP", "JPY")


def invoice_events(number: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    invoice = f"BENCH-{number:08d}"
    currency = rng.choice(CURRENCIES)
    total = rng.randrange(1_000, 500_000) / 100 if currency != "JPY" else rng.randrange(100, 50_000)
    sent = START + timedelta(minutes=rng.randrange(0, 600 * 24 * 60))
    due = (sent + timedelta(days=30)).date().isoformat()
    facts: list[tuple[str, datetime, dict[str, Any]]] = [
        ("InvoiceSent", sent, {"balanceAmount": f"{total:.2f}", "totalAmount": f"{total:.2f}"})
    ]
    if rng.random() < 0.3:
        part = round(total * rng.uniform(0.1, 0.9), 2)
        paid_at = sent + timedelta(days=rng.randrange(1, 60))
        first_payment = {"transactionId": f"tx-{number}-1", "amount": f"{part:.2f}"}
        balance = {"balanceAmount": f"{total - part:.2f}", "payment": first_payment}
        facts.append(("InvoicePartiallyPaid", paid_at, balance))
        if rng.random() < 1 / 3:
            second_payment = {"transactionId": f"tx-{number}-2", "amount": f"{total - part:.2f}"}
            paid_in_full = {"balanceAmount": "0.00", "payment": second_payment}
            later = paid_at + timedelta(days=rng.randrange(1, 30))
            facts.append(("InvoicePaid", later, paid_in_full))
    for version, (event_type, occurred_at, extra) in enumerate(facts, 1):
        customer = {"name": f"Customer {number % 5000}", "email": None}
        data = {"invoiceNumber": invoice, "currency": currency, "dueDate": due,
                "customer": customer, **extra}  # fmt: skip
        document = json.dumps(data)
        yield (
            invoice, version, event_type, 1, occurred_at, occurred_at, "webhook",
            f"bench:{invoice}:{version}", hashlib.sha256(document.encode()).hexdigest(), document,
        )  # fmt: skip


def reminder_events(number: int, first_version: int, count: int) -> Iterator[tuple[Any, ...]]:
    """A long-lived invoice: ``count`` reminders, a minute apart, from ``first_version`` on (the
    first of all is the send). For measuring what one more fact on a long stream costs."""
    invoice = f"LONG-{number:06d}"
    for version in range(first_version, first_version + count):
        occurred_at = START + timedelta(minutes=version)
        event_type = "InvoiceSent" if version == 1 else "InvoiceReminderSent"
        data = {"organizationId": "org-bench", "invoiceNumber": invoice, "currency": "USD",
                "totalAmount": "100.00", "balanceAmount": "100.00"}  # fmt: skip
        document = json.dumps(data)
        yield (
            invoice, version, event_type, 2, occurred_at, occurred_at, "webhook",
            f"bench:{invoice}:{version}", hashlib.sha256(document.encode()).hexdigest(), document,
        )  # fmt: skip


async def copy_events(database_url: str, records: list[tuple[Any, ...]]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table("events", records=records, columns=COLUMNS)
        await connection.execute("ANALYZE events")
    finally:
        await connection.close()


async def generate(database_url: str, first: int, count: int, seed: int = 1) -> int:
    """Append ``count`` invoices numbered from ``first``; returns the events written."""
    rng = random.Random(seed + first)
    connection = await asyncpg.connect(database_url)
    written = 0
    try:
        batch: list[tuple[Any, ...]] = []
        for number in range(first, first + count):
            batch.extend(invoice_events(number, rng))
            if len(batch) >= 50_000:
                await connection.copy_records_to_table("events", records=batch, columns=COLUMNS)
                written += len(batch)
                batch = []
        if batch:
            await connection.copy_records_to_table("events", records=batch, columns=COLUMNS)
            written += len(batch)
        await connection.execute("ANALYZE events")
    finally:
        await connection.close()
    return written
