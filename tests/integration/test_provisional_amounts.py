"""Provisional figures (inferred from notifications alone) are kept apart from confirmed money
in every read model and report, and a rebuild recounts them as incremental projection kept
them, on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import EventSource, InvoiceEventType, NewEvent
from service.domain.payloads import (
    HistoryEntryRecorded,
    InvoiceObserved,
    Payload,
    PaymentReported,
    StatedFields,
    encode,
)
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.read.documents import as_json, invoice_from_row
from service.read.queries import InvoiceQueries
from service.store.events.for_engine import event_store_for
from service.store.schema import invoice_collections, invoice_totals, invoice_versions, invoices
from service.store.views import report_aggregates
from service.store.views.changes import ProjectedInvoice
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import BASE_TIME, invoice_event
from tests.support.provisional import MOMENT, confirmed, paid_once, project, sent

pytestmark = pytest.mark.anyio
E = InvoiceEventType
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
DAY_AFTER = MOMENT + timedelta(days=1)


def _only(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{key: row[key] for key in keys} for row in rows]


async def test_a_provisional_total_balance_and_collection_are_stored_as_provisional(
    engine: AsyncEngine,
) -> None:
    await project(SqlReadModelStore(engine), [
        paid_once("P-1", total="100", balance="60", provisional=True),
        paid_once("C-1", total="50", balance="20", provisional=False),
    ])  # fmt: skip
    async with engine.connect() as connection:
        flags = {
            table.name: sorted(
                tuple(row)
                for row in await connection.execute(
                    select(table.c.invoice_number, *[c for c in table.c if "provisional" in c.name])
                )
            )
            for table in (invoices, invoice_versions, invoice_collections)
        }
        rows = await connection.execute(select(invoices.c.invoice_number, invoices.c.payments))
        payments = {row.invoice_number: row.payments for row in rows}
    assert flags == {
        "invoices": [("C-1", False, False), ("P-1", True, True)],
        "invoice_versions": [("C-1", False, False), ("P-1", True, True)],
        "invoice_collections": [("C-1", False), ("P-1", True)],
    }
    assert [payment["provisional"] for payment in payments["P-1"]] == [True]
    assert [payment["provisional"] for payment in payments["C-1"]] == [False]


async def test_every_report_gives_the_provisional_part_of_its_sums_and_includes_it(
    engine: AsyncEngine,
) -> None:
    await project(SqlReadModelStore(engine), [
        paid_once("P-1", total="100", balance="60", provisional=True),
        paid_once("C-1", total="50", balance="20", provisional=False),
        paid_once("E-1", total="10", balance="4", provisional=False, currency="EUR"),
    ])  # fmt: skip
    queries = InvoiceQueries(engine)
    assert _only(await queries.by_status(), "currency", "total", "provisional_total",
                 "balance", "provisional_balance") == [
        {"currency": "EUR", "total": Decimal(10), "provisional_total": Decimal(0),
         "balance": Decimal(4), "provisional_balance": Decimal(0)},
        {"currency": "USD", "total": Decimal(150), "provisional_total": Decimal(100),
         "balance": Decimal(80), "provisional_balance": Decimal(60)},
    ]  # fmt: skip
    balances = [
        {"currency": "EUR", "balance": Decimal(4), "provisional_balance": Decimal(0)},
        {"currency": "USD", "balance": Decimal(80), "provisional_balance": Decimal(60)},
    ]
    for as_of in (None, DAY_AFTER):
        outstanding = await queries.outstanding(as_of)
        assert _only(outstanding, "currency", "balance", "provisional_balance") == balances
    assert await queries.outstanding(DAY_AFTER) == await queries.outstanding_from_history(DAY_AFTER)
    aging = await queries.aging(DAY_AFTER.date())
    assert _only(aging, "currency", "current", "provisional_balance") == [
        {"currency": "EUR", "current": Decimal(4), "provisional_balance": Decimal(0)},
        {"currency": "USD", "current": Decimal(80), "provisional_balance": Decimal(60)},
    ]
    assert aging == await queries.aging_from_history(DAY_AFTER.date())
    by_customer = await queries.aging_by_customer(DAY_AFTER.date())
    assert _only(by_customer, "currency", "provisional_balance") == [
        {"currency": "EUR", "provisional_balance": Decimal(0)},
        {"currency": "USD", "provisional_balance": Decimal(60)},
    ]
    collected = [
        {"currency": "EUR", "amount": Decimal(6), "provisional_amount": Decimal(0)},
        {"currency": "USD", "amount": Decimal(70), "provisional_amount": Decimal(40)},
    ]
    for zone in (None, ZoneInfo("Asia/Tokyo")):  # the daily aggregate; the collections
        rows = await (
            queries.collections(*MARCH, "month")
            if zone is None
            else queries.collections(*MARCH, "month", None, zone)
        )
        assert _only(rows, "currency", "amount", "provisional_amount") == collected
    assert await queries.collections(*MARCH, "day") == (
        await queries.collections_from_history(*MARCH, "day")
    )


async def test_a_provisional_part_is_null_only_where_its_sum_is(engine: AsyncEngine) -> None:
    flagged = sent("U-1", total="10", provisional=True).state
    unknown = replace(flagged, total_amount=None, balance_amount=None)
    await project(SqlReadModelStore(engine), [ProjectedInvoice(unknown, [unknown], MOMENT)])
    queries = InvoiceQueries(engine)
    [status] = await queries.by_status()
    assert (status["total"], status["provisional_total"]) == (None, None)
    [outstanding] = await queries.outstanding(DAY_AFTER)
    assert (outstanding["balance"], outstanding["provisional_balance"]) == (None, None)
    [aging] = await queries.aging(DAY_AFTER.date())
    assert (aging["current"], aging["provisional_balance"]) == (None, None)


async def test_money_cybersource_confirms_stops_being_provisional_from_then_on(
    engine: AsyncEngine,
) -> None:
    read_models = SqlReadModelStore(engine)
    provisional = paid_once("P-1", total="100", balance="60", provisional=True)
    await project(read_models, [provisional])
    await project(read_models, [confirmed(provisional, DAY_AFTER)])
    queries = InvoiceQueries(engine)
    [status] = await queries.by_status()
    assert (status["provisional_total"], status["provisional_balance"]) == (0, 0)
    [before] = await queries.outstanding(MOMENT + timedelta(hours=1))
    [after] = await queries.outstanding(DAY_AFTER)
    assert (before["balance"], before["provisional_balance"]) == (60, 60)
    assert (after["balance"], after["provisional_balance"]) == (60, 0)
    [collected] = await queries.collections(*MARCH, "month")
    assert (collected["amount"], collected["provisional_amount"]) == (40, 0)


async def _recounted_tables(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as connection:
        return {
            table.name: [
                row._asdict()
                for row in await connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in (invoice_totals, *report_aggregates.TABLES)
        }


async def test_a_rebuild_recounts_the_provisional_figures_incremental_projection_kept(
    engine: AsyncEngine,
) -> None:
    read_models = SqlReadModelStore(engine)
    first = paid_once("P-1", total="100", balance="60", provisional=True)
    open_for_days = sent("P-2", total="25", provisional=True, currency="EUR")
    await project(read_models, [first, open_for_days, paid_once(
        "C-1", total="50", balance="20", provisional=False)])  # fmt: skip
    latest = [confirmed(first, DAY_AFTER), open_for_days]
    await project(read_models, [latest[0]])
    incremental = await _recounted_tables(engine)
    assert sum(
        row["provisional_balance_opened"] for row in incremental["report_open_balance_changes"]
    ) == Decimal(85)  # P-1's 60 until confirmed, and P-2's 25

    await read_models.clear_rebuild_tables()
    await read_models.write_rebuild_batch([
        *latest, paid_once("C-1", total="50", balance="20", provisional=False)
    ])  # fmt: skip
    await read_models.swap_in_rebuild(owner="test", to_position=await read_models.checkpoint())
    assert await _recounted_tables(engine) == incremental


def _answer(number: str, key: str, seconds: int, type_: str, payload: Payload) -> NewEvent:
    """A fact the reconciler records from Cybersource's answer."""
    return NewEvent(
        stream_id=number, type=type_, occurred_at=BASE_TIME + timedelta(seconds=seconds),
        source=EventSource.RECONCILER, idempotency_key=key, data=encode(payload),
    )  # fmt: skip


async def _read_rows(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as connection:
        return {
            table.name: [
                row._asdict()
                for row in await connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in (invoices, invoice_versions, invoice_collections, invoice_totals,
                          *report_aggregates.TABLES)
        }  # fmt: skip


async def test_notifications_alone_are_projected_provisional_until_cybersource_answers(
    engine: AsyncEngine,
) -> None:
    """Through the fold and the projector: a total from a send's balance and a first payment
    from the balances around it are provisional; a rebuild gives the same figures; the
    answer confirms them."""
    store, read_models = event_store_for(engine), SqlReadModelStore(engine)
    organization = {"notification": {"organizationId": "org-a"}, "currency": "USD"}
    await store.append([invoice_event("W-1", "w1", balanceAmount="150.00", **organization)])
    await store.append([invoice_event("W-1", "w2", type=E.INVOICE_PARTIALLY_PAID, seconds=600,
                                      balanceAmount="40.00", **organization)])  # fmt: skip
    await InvoiceProjector(store, read_models, owner="p1").catch_up()
    queries = InvoiceQueries(engine)

    async def figures() -> tuple[Any, ...]:
        [row] = await queries.invoices_numbered("W-1")
        document = as_json(invoice_from_row(row))
        [status] = await queries.by_status()
        [collected] = await queries.collections(BASE_TIME.date(), BASE_TIME.date(), "day")
        return (
            document["provisional"], [payment["provisional"] for payment in document["payments"]],
            (status["total"], status["provisional_total"], status["provisional_balance"]),
            (collected["amount"], collected["provisional_amount"]),
        )  # fmt: skip

    assert await figures() == (
        ["totalAmount", "paidAmount"], [True], (150, 150, 0), (110, 110),
    )  # fmt: skip
    incremental = await _read_rows(engine)
    await rebuild_invoices(store, read_models)
    assert await _read_rows(engine) == incremental

    history = [("SEND", 0, None), ("PAYMENT", 600, PaymentReported("tx-1", Decimal("110.00")))]
    await store.append([
        _answer("W-1", f"h-{event}", seconds,
                E.PAYMENT_RECEIVED if event == "PAYMENT" else "InvoiceHistoryRecorded",
                HistoryEntryRecorded("org-a", "W-1", event, payment, "USD", 0))
        for event, seconds, payment in history
    ])  # fmt: skip
    stated = StatedFields("USD", Decimal("150.00"), Decimal("40.00"), date(2026, 2, 1))
    await store.append([_answer("W-1", "observed", 900, E.INVOICE_OBSERVED,
                                InvoiceObserved("org-a", "W-1", "PARTIAL", stated))])  # fmt: skip
    # The rebuild took the lease over: the next projector to hold it goes on from its horizon.
    await InvoiceProjector(store, read_models, owner="p2").catch_up()
    assert await figures() == ([], [False], (150, 0, 0), (110, 0))
    [before_the_answer] = await queries.outstanding(BASE_TIME + timedelta(seconds=700))
    # The answer told the invoice's past from Cybersource's history: none of it is provisional.
    assert before_the_answer["provisional_balance"] == 0
