"""The reports read from the projector's day-bucketed aggregates answer exactly what the
state history and the collections themselves answer, on both engines."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.events import NewEvent
from service.domain.invoice import Collection, InvoiceState
from service.domain.status import InvoiceStatus
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.read.queries import InvoiceQueries
from service.store.events.for_engine import event_store_for
from service.store.schema import invoice_totals
from service.store.views import report_aggregates
from service.store.views.changes import ProjectedInvoice
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import BASE_TIME, invoice_event
from tests.support.histories import TYPES

pytestmark = pytest.mark.anyio
ZONES = [
    UTC,
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Pacific/Kiritimati"),
]
ORGANIZATIONS = [None, "org-a", "org-b"]
DAYS = 12


def history_over_days(seed: int, invoices: int, events: int, prefix: str) -> list[NewEvent]:
    """Facts about invoices of two organizations spread over ``DAYS`` days (several a day,
    some at midnight exactly), in a shuffled delivery order."""
    rng = random.Random(seed)
    history = []
    for index in range(events):
        invoice = rng.randrange(invoices)
        number = f"{prefix}INV-{invoice}"
        data: dict[str, Any] = {"currency": rng.choice(["USD", "EUR"])}
        if rng.random() < 0.7:
            data["balanceAmount"] = f"{rng.randrange(0, 50_000) / 100:.2f}"
        if rng.random() < 0.3:
            data["totalAmount"] = "500.00"
        if rng.random() < 0.4:
            data["payment"] = {
                "transactionId": f"tx-{rng.randrange(6)}",
                "amount": f"{rng.randrange(1, 10_000) / 100:.2f}",
            }
        if rng.random() < 0.6:
            data["dueDate"] = (
                BASE_TIME.date() + timedelta(days=rng.randrange(-100, 40))
            ).isoformat()
        seconds = rng.randrange(0, DAYS * 86_400)
        if rng.random() < 0.15:
            seconds -= seconds % 86_400  # midnight UTC
        organization = "org-a" if invoice % 2 == 0 else "org-b"
        history.append(
            invoice_event(
                number,
                f"{prefix}{seed}-{index}",
                type=rng.choice(TYPES),
                seconds=seconds,
                notification={"organizationId": organization},
                **data,
            )
        )
    rng.shuffle(history)
    return history


async def aggregate_rows(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as connection:
        return {
            table.name: [
                row._asdict()
                for row in await connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in (*report_aggregates.TABLES, invoice_totals)
        }


async def assert_the_aggregates_answer_as_the_history(
    queries: InvoiceQueries, rng: random.Random, checks: int
) -> None:
    """At random moments, organizations and time zones: every report read from the
    aggregates equals the same report read from the state history and the collections."""
    for _ in range(checks):
        organization = rng.choice(ORGANIZATIONS)
        zone = rng.choice(ZONES)
        moment = BASE_TIME + timedelta(seconds=rng.randrange(-86_400, (DAYS + 1) * 86_400))
        if rng.random() < 0.3:
            moment -= timedelta(seconds=moment.second, minutes=moment.minute, hours=moment.hour)
        day = moment.date()
        assert await queries.outstanding(moment, organization) == (
            await queries.outstanding_from_history(moment, organization)
        )
        assert await queries.aging(day, organization, zone) == (
            await queries.aging_from_history(day, organization, zone)
        )
        first, last = sorted((day, BASE_TIME.date() + timedelta(days=rng.randrange(DAYS))))
        for interval in ("day", "week", "month"):
            assert await queries.collections(first, last, interval, organization, zone) == (
                await queries.collections_from_history(first, last, interval, organization, zone)
            )


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    invoices=st.integers(1, 12),
    events=st.integers(1, 70),
    delivered_per_projection=st.integers(1, 25),
    batch_size=st.integers(1, 10),
)
async def test_reports_from_the_aggregates_equal_the_reports_from_the_history(
    engine: AsyncEngine,
    seed: int,
    invoices: int,
    events: int,
    delivered_per_projection: int,
    batch_size: int,
) -> None:
    store = event_store_for(engine)
    history = history_over_days(seed, invoices, events, prefix=f"{uuid.uuid4().hex[:6]}-")
    for start in range(0, len(history), delivered_per_projection):
        for event in history[start : start + delivered_per_projection]:
            await store.append([event])
        await InvoiceProjector(
            store, SqlReadModelStore(engine), owner="p", batch_size=batch_size
        ).catch_up()
    await assert_the_aggregates_answer_as_the_history(
        InvoiceQueries(engine), random.Random(seed), checks=8
    )
    incremental = await aggregate_rows(engine)
    await rebuild_invoices(store, SqlReadModelStore(engine))
    assert await aggregate_rows(engine) == incremental


async def test_the_reports_read_the_aggregates_at_the_edges_of_time(engine: AsyncEngine) -> None:
    store = event_store_for(engine)
    await store.append(
        [invoice_event("E-1", "e1", balanceAmount="7.00", currency="USD", dueDate="2026-01-01")]
    )
    await InvoiceProjector(store, SqlReadModelStore(engine), owner="p").catch_up()
    queries = InvoiceQueries(engine)
    for day in (date.min, date(2025, 12, 31), date(2026, 1, 1), date.max):
        for zone in ZONES:
            assert await queries.aging(day, None, zone) == (
                await queries.aging_from_history(day, None, zone)
            )
            assert await queries.collections(day, date.max, "month", None, zone) == (
                await queries.collections_from_history(day, date.max, "month", None, zone)
            )
    for moment in (datetime.min.replace(tzinfo=UTC), BASE_TIME, datetime.max.replace(tzinfo=UTC)):
        assert await queries.outstanding(moment) == await queries.outstanding_from_history(moment)


def _amount(rng: random.Random) -> Decimal | None:
    return None if rng.random() < 0.2 else Decimal(rng.randrange(0, 50_000)) / 100


def labelled_histories(
    seed: int, invoices: int
) -> list[tuple[list[InvoiceState], list[Collection]]]:
    """Per invoice, every state it goes through and its collections, with figures labelled
    provisional at random (as the fold labels those inferred from notifications alone)."""
    rng = random.Random(seed)
    histories = []
    for index in range(invoices):
        organization, currency = rng.choice(["org-a", "org-b"]), rng.choice(["USD", "EUR"])
        seconds = set()  # distinct instants, some at midnight UTC exactly
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(DAYS * 86_400)
            seconds.add(at - at % 86_400 if rng.random() < 0.15 else at)
        states = [
            InvoiceState(
                f"L-{index}", organization, rng.choice(list(InvoiceStatus)), currency,
                _amount(rng), _amount(rng),
                rng.choice([None, BASE_TIME.date() + timedelta(days=rng.randrange(-100, 40))]),
                last_event_at=BASE_TIME + timedelta(seconds=at), last_position=position,
                total_provisional=rng.random() < 0.5, balance_provisional=rng.random() < 0.5,
            )
            for position, at in enumerate(sorted(seconds), 1)
        ]  # fmt: skip
        collections = sorted(
            (
                Collection(BASE_TIME + timedelta(seconds=rng.randrange(DAYS * 86_400)),
                           _amount(rng), provisional=rng.random() < 0.5)
                for _ in range(rng.randrange(5))
            ),
            key=lambda collection: collection.collected_at,
        )  # fmt: skip
        histories.append((states, collections))
    return histories


def projected_up_to(
    states: list[InvoiceState], collections: list[Collection], count: int, before: int
) -> ProjectedInvoice:
    """The invoice once its first ``count`` states are known (and a share of its collections
    as large); written onto its rows as of its first ``before`` states, or whole when 0."""

    def collected(known: int) -> int:
        return len(collections) * known // len(states)

    last = replace(states[count - 1], collections=tuple(collections[: collected(count)]))
    if before == 0:
        return ProjectedInvoice(last, [*states[: count - 1], last], BASE_TIME)
    kept = collected(before)
    return ProjectedInvoice(
        last, [*states[before - 1 : count - 1], last], BASE_TIME,
        history_from=states[before - 1].last_event_at, collections_kept=kept,
        collections_before=kept,
    )  # fmt: skip


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), invoices=st.integers(1, 12), rounds=st.integers(1, 6))
async def test_provisional_parts_from_the_aggregates_equal_those_from_the_history(
    engine: AsyncEngine, seed: int, invoices: int, rounds: int
) -> None:
    read_models = SqlReadModelStore(engine)
    assert await read_models.acquire_lease("test", 60)
    position = await read_models.checkpoint()
    await read_models.clear_rebuild_tables()  # an empty rebuild: each example starts afresh
    await read_models.swap_in_rebuild(owner="test", to_position=position)
    rng = random.Random(seed)
    histories = labelled_histories(seed, invoices)
    known = [0] * len(histories)
    for _ in range(rounds):
        batch = []
        for index, (states, collections) in enumerate(histories):
            if known[index] == len(states) or rng.random() < 0.3:
                continue
            count = rng.randint(known[index] + 1, len(states))
            # Folded onto its snapshot (its earlier rows stand) or projected whole.
            before = known[index] if rng.random() < 0.5 else 0
            batch.append(projected_up_to(states, collections, count, before))
            known[index] = count
        await read_models.apply(
            batch, owner="test", from_position=position, to_position=position + 1
        )
        position += 1
    await assert_the_aggregates_answer_as_the_history(InvoiceQueries(engine), rng, checks=8)

    incremental = await aggregate_rows(engine)
    await read_models.clear_rebuild_tables()
    await read_models.write_rebuild_batch([
        projected_up_to(states, collections, count, 0)
        for (states, collections), count in zip(histories, known, strict=True)
        if count
    ])  # fmt: skip
    await read_models.swap_in_rebuild(owner="test", to_position=position)
    assert await aggregate_rows(engine) == incremental
