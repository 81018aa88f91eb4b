"""Report queries over read rows written as the projector writes them, on both engines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import InvoiceKey
from service.domain.invoice import Collection, InvoiceState
from service.domain.status import InvoiceStatus
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.read.queries import InvoiceQueries
from service.store.events.for_engine import event_store_for
from service.store.schema import invoices
from service.store.views.changes import ProjectedInvoice
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event
from tests.support.projections import project

pytestmark = pytest.mark.anyio
MOMENT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def invoice(
    number: str,
    *,
    organization: str = "org-a",
    total: str | None = None,
    balance: str | None = None,
    collected: tuple[str | None, ...] = (),
    currency: str = "USD",
) -> ProjectedInvoice:
    state = InvoiceState(
        number,
        organization_id=organization,
        status=InvoiceStatus.PARTIAL,
        currency=currency,
        total_amount=None if total is None else Decimal(total),
        balance_amount=None if balance is None else Decimal(balance),
        due_date=date(2026, 3, 31),
        collections=tuple(
            Collection(MOMENT, None if amount is None else Decimal(amount)) for amount in collected
        ),
        last_event_at=MOMENT,
        last_position=1,
    )
    return ProjectedInvoice(state, [state], MOMENT)


async def test_a_collection_of_unknown_amount_is_stored_unknown_and_makes_its_row_incomplete(
    engine: AsyncEngine,
) -> None:
    await project(engine, invoice("C-1", total="100", balance="50", collected=("30", None)))
    await project(engine, invoice("C-2", total="10", balance="10", collected=(None,),
                                  currency="EUR"))  # fmt: skip
    rows = await InvoiceQueries(engine).collections(date(2026, 3, 1), date(2026, 3, 31), "month")
    assert rows == [
        {
            "period": "2026-03",
            "currency": "EUR",
            "amount": None,
            "provisional_amount": None,
            "incomplete": True,
        },
        {
            "period": "2026-03",
            "currency": "USD",
            "amount": Decimal("30"),
            "provisional_amount": Decimal(0),
            "incomplete": True,
        },
    ]


async def test_sums_are_exact_decimals_where_floating_point_would_not_be(
    engine: AsyncEngine,
) -> None:
    # As floats these sum to 1234567890124.4568 and 0.30000000000000004.
    await project(
        engine,
        invoice("E-1", total="1234567890123.456789", balance="0.1", collected=("0.1",)),
        invoice("E-2", total="0.999999", balance="0.2", collected=("0.2",)),
    )
    queries = InvoiceQueries(engine)
    [status] = await queries.by_status()
    assert status["total"] == Decimal("1234567890124.456788")
    assert status["balance"] == Decimal("0.3")
    [outstanding] = await queries.outstanding(MOMENT + timedelta(seconds=1))
    assert outstanding["balance"] == Decimal("0.3")
    [collections] = await queries.collections(date(2026, 3, 1), date(2026, 3, 1), "day")
    assert collections["amount"] == Decimal("0.3")
    amounts = [status["total"], status["balance"], outstanding["balance"], collections["amount"]]
    assert all(type(amount) is Decimal for amount in amounts)


async def test_an_amount_is_stored_whole_whatever_its_size(engine: AsyncEngine) -> None:
    largest = Decimal("9999999999999.999999")
    await project(engine, *[invoice(f"L-{n}", total=str(largest), balance="1") for n in range(3)])
    [status] = await InvoiceQueries(engine).by_status()
    assert status["total"] == 3 * largest
    async with engine.connect() as connection:
        stored = await connection.scalar(select(invoices.c.total_amount).limit(1))
    assert stored == largest


async def test_the_totals_follow_invoices_as_they_change(
    engine: AsyncEngine,
) -> None:
    await project(engine, invoice("T-1", total="100", balance="100"), invoice("T-2"))
    await project(engine, invoice("T-2", total="20", balance="5"))
    await project(engine, invoice("T-1", total="100", balance=None))
    queries = InvoiceQueries(engine)
    incremental = await queries.by_status()
    assert incremental == [
        {"status": "PARTIAL", "currency": "USD", "invoices": 2, "total": Decimal("120"),
         "balance": Decimal("5"), "provisional_total": Decimal(0),
         "provisional_balance": Decimal(0), "incomplete": True},
    ]  # fmt: skip


async def test_an_invoice_whose_organization_becomes_known_leaves_no_row_behind(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine)
    read_models = SqlReadModelStore(engine)
    projector = InvoiceProjector(store, read_models, owner="p1")
    unnamed = invoice_event("2001", "unnamed", currency="USD", balanceAmount=None)
    await store.append([unnamed])
    await projector.catch_up()
    [(organization,)] = await _identities(engine)
    assert organization == ""
    await store.append([invoice_event("2001", "named", seconds=60, balanceAmount=None,
                                      notification={"organizationId": "org-a"})])  # fmt: skip
    await projector.catch_up()
    assert await _identities(engine) == [("org-a",)]
    incremental = await InvoiceQueries(engine).by_status()
    assert [(row["invoices"], row["total"], row["incomplete"]) for row in incremental] == [
        (1, None, True),  # its total was never reported
    ]
    await rebuild_invoices(store, read_models)  # recounts the totals from the invoice rows
    assert await _identities(engine) == [("org-a",)]
    assert await InvoiceQueries(engine).by_status() == incremental


async def _identities(engine: AsyncEngine) -> list[tuple[str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT organization_id FROM invoices"))
        return [tuple(row) for row in rows]


async def test_doubtful_invoices_are_named_with_their_organization(engine: AsyncEngine) -> None:
    await project(
        engine,
        invoice("D-1", organization="org-a", total=None, balance="5"),  # never seen in full
        invoice("D-1", organization="org-b", total="10", balance="9999999999999"),  # above total
        invoice("D-2", organization="org-a", total="1000000000000", balance="999999999999.5"),
    )
    doubts = await InvoiceQueries(engine).doubtful_invoices(
        MOMENT, MOMENT - timedelta(days=7), limit=10
    )
    assert sorted(doubts) == [InvoiceKey("org-a", "D-1"), InvoiceKey("org-b", "D-1")]


async def test_an_invoice_is_read_with_the_projection_position_in_one_statement(
    engine: AsyncEngine,
) -> None:
    await project(engine, invoice("ONE-1", total="10.00", balance="10.00"))
    await project(engine, invoice("ONE-2", total="5.00", balance="5.00"))
    statements: list[str] = []

    def record(*arguments: Any) -> None:
        statements.append(arguments[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        rows = await InvoiceQueries(engine).invoices_numbered("ONE-1")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert [(row.invoice_number, row.projection_position) for row in rows] == [("ONE-1", 2)]
    assert len([statement for statement in statements if statement.startswith("SELECT")]) == 1


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
async def test_a_set_of_organizations_reads_what_its_organizations_read_added_up(
    engine: AsyncEngine, zone: str
) -> None:
    """A merchant's organizations (or a limited token's) read as one: every report over the set
    is the sum of its organizations' reports, and another organization adds nothing."""
    await project(
        engine,
        invoice("S-1", organization="org-a", total="100", balance="60", collected=("40",)),
        invoice("S-2", organization="org-b", total="50", balance="50"),
        invoice("S-3", organization="org-c", total="7", balance="2", collected=("5",)),
    )
    queries, day, tz = InvoiceQueries(engine), date(2026, 3, 31), ZoneInfo(zone)
    march = (date(2026, 3, 1), date(2026, 3, 31), "month")

    async def reports(scope: Any) -> list[Any]:
        return [
            await queries.outstanding(None, scope),
            await queries.outstanding(MOMENT + timedelta(seconds=1), scope),
            await queries.aging(day, scope, tz),
            await queries.collections(*march, scope, tz),  # type: ignore[arg-type]
            await queries.by_status(scope),
        ]

    both = await reports(frozenset({"org-a", "org-b"}))
    [outstanding, outstanding_then, aging, collections, statuses] = both
    assert outstanding[0]["balance"] == outstanding_then[0]["balance"] == Decimal("110")
    assert outstanding[0]["invoices"] == 2
    assert sum(row["current"] for row in aging) == Decimal("110")
    assert [row["amount"] for row in collections] == [Decimal("40")]
    assert statuses[0]["total"] == Decimal("150")
    assert await reports(frozenset()) == [[], [], [], [], []]
    assert await reports(frozenset({"org-a"})) == await reports("org-a")
    assert list(await queries.invoices_numbered("S-2", frozenset({"org-a"}))) == []
