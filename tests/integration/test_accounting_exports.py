"""Accounting exports on the database, on both engines: exports made at once post each
payment once, and a payment a later fact removes is reversed, never edited."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import EventSource, InvoiceEventType, NewEvent
from service.domain.payloads import CorrectionRecorded, NotificationIdentity, StatedFields, encode
from service.projections.projector import InvoiceProjector
from service.store.accounting_exports import SqlAccountingExports
from service.store.errors import StoreUnavailable
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import BASE_TIME, invoice_event

pytestmark = pytest.mark.anyio
NEW_YEAR = date(2026, 1, 1)


async def _record(engine: AsyncEngine, *new_events: object) -> None:
    store = event_store_for(engine)
    await store.append(list(new_events))  # type: ignore[arg-type]
    await InvoiceProjector(store, SqlReadModelStore(engine), owner="test").catch_up()


def _paid_invoices(count: int) -> list[object]:
    facts: list[object] = []
    for number in range(count):
        stream = f"INV-{number}"
        facts += [
            invoice_event(stream, f"{stream}-send", totalAmount="10.00", currency="USD"),
            invoice_event(
                stream, f"{stream}-paid", type=InvoiceEventType.INVOICE_PAID, seconds=60,
                balanceAmount="0.00", currency="USD",
            ),
        ]  # fmt: skip
    return facts


async def test_exports_made_at_once_post_each_payment_once(engine: AsyncEngine) -> None:
    await _record(engine, *_paid_invoices(20))
    exports = SqlAccountingExports(engine)

    async def one() -> int:
        try:
            made = await exports.create("payments", NEW_YEAR, NEW_YEAR, "test", datetime.now(UTC))
        except StoreUnavailable:  # SQLite: the writer that lost the race retries later
            return 0
        return made.line_count

    counts = await asyncio.gather(*(one() for _ in range(4)))
    assert sum(counts) == 20
    again = await exports.create("payments", NEW_YEAR, NEW_YEAR, "test", datetime.now(UTC))
    assert again.line_count == 0


def _correction_removing_the_payment() -> NewEvent:
    """An operator's correction of INV-0's paid notification (position 2): a reminder that
    still owes the whole total, so no money was collected."""
    corrected = CorrectionRecorded(
        None, "INV-0",
        StatedFields(
            currency="USD", total_amount=Decimal("10.00"), balance_amount=Decimal("10.00")
        ),
        None, NotificationIdentity(notification_id="INV-0-paid", event_type="reminder"),
        reason="the payment was refused", corrects_position=2, recorded_by="cli:test",
    )  # fmt: skip
    return NewEvent(
        stream_id="INV-0", type=InvoiceEventType.INVOICE_REMINDER_SENT,
        occurred_at=BASE_TIME + timedelta(seconds=60), source=EventSource.OPERATOR,
        idempotency_key="operator:correction:INV-0", data=encode(corrected),
    )  # fmt: skip


async def test_a_payment_a_correction_removes_is_reversed_and_never_edited(
    engine: AsyncEngine,
) -> None:
    await _record(engine, *_paid_invoices(1))
    exports = SqlAccountingExports(engine)
    first = await exports.create("payments", NEW_YEAR, NEW_YEAR, "test", datetime.now(UTC))
    [exported] = await exports.lines(first.export_id)
    await _record(engine, _correction_removing_the_payment())
    second = await exports.create("payments", NEW_YEAR, NEW_YEAR, "test", datetime.now(UTC))
    [reversal] = await exports.lines(second.export_id)
    assert (reversal.kind, reversal.identity, reversal.amount, reversal.occurred_at) == (
        "reversal", exported.identity, exported.amount, exported.occurred_at
    )  # fmt: skip
    assert (reversal.source, reversal.position) == ("operator", 3)
    assert await exports.lines(first.export_id) == [exported]
    third = await exports.create("payments", NEW_YEAR, NEW_YEAR, "test", datetime.now(UTC))
    assert third.line_count == 0
