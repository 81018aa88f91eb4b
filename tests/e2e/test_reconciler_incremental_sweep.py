"""The incremental sweep against the sandbox: a few detail calls bring the ledger back to
exactly what Cybersource says after changes no webhook reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.projections.projector import InvoiceProjector
from service.read.queries import InvoiceQueries
from service.reconciler.client import CybersourceClient
from service.reconciler.ledger_view import SqlLedgerView
from service.reconciler.reconciler import Reconciler
from service.reconciler.summaries import FetchReason
from service.reconciler.sweep import SWEEP_STATUS_ORDER
from service.reconciler.sweep_schedule import SqlSweepSchedule
from service.reconciler.worker import ReconcilerWorker
from service.store.events.for_engine import event_store_for
from service.store.schema import invoices
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.cybersource_sandbox import FAST, MERCHANT, drive, new_invoice

pytestmark = pytest.mark.anyio

# No --webhook-url: every change in the sandbox is one whose webhook was lost.
SETTLED_PORTFOLIO = ("S-DRAFT", "S-CREATED", "S-SENT", "S-PAID", "S-CANCELED", "S-SENT-2")


@pytest.fixture
async def cybersource(sandbox_url: str) -> AsyncIterator[CybersourceClient]:
    async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
        yield client


@pytest.fixture
def reconciler(cybersource: CybersourceClient, engine: AsyncEngine) -> Reconciler:
    return Reconciler(cybersource, event_store_for(engine), ledger=SqlLedgerView(engine))


def settled_portfolio(sandbox_url: str) -> None:
    """Invoices in every status whose balance cannot move without the status changing."""
    new_invoice(sandbox_url, "S-DRAFT", "10.00", customerName="Ada Byron")
    new_invoice(sandbox_url, "S-CREATED", "20.00")
    drive(sandbox_url, "/invoices/S-CREATED/publish")
    for number in ("S-SENT", "S-SENT-2"):
        new_invoice(sandbox_url, number, "30.00", allowPartialPayments=True)
        drive(sandbox_url, f"/invoices/{number}/send")
    new_invoice(sandbox_url, "S-PAID", "40.00")
    drive(sandbox_url, "/invoices/S-PAID/send")
    drive(sandbox_url, "/invoices/S-PAID/pay", {"amount": "40.00", "transactionId": "tx-p"})
    new_invoice(sandbox_url, "S-CANCELED", "50.00")
    drive(sandbox_url, "/invoices/S-CANCELED/send")
    drive(sandbox_url, "/invoices/S-CANCELED/cancel")


async def project(engine: AsyncEngine) -> None:
    projector = InvoiceProjector(event_store_for(engine), SqlReadModelStore(engine), owner="test")
    await projector.catch_up()


async def reconciled_and_projected(reconciler: Reconciler, engine: AsyncEngine) -> None:
    summary = await reconciler.sweep(full=True)
    assert summary.failed == 0
    await project(engine)


async def assert_ledger_agrees(
    engine: AsyncEngine, cybersource: CybersourceClient, numbers: list[str]
) -> None:
    """Every invoice's read model row is what Get Invoice Details says, to the cent."""
    async with engine.connect() as connection:
        rows = {
            row.invoice_number: row
            for row in await connection.execute(
                select(invoices).where(invoices.c.organization_id == MERCHANT.merchant_id)
            )
        }
    assert sorted(rows) == sorted(numbers)
    for number in numbers:
        truth = await cybersource.get_invoice(number)
        amounts = truth["orderInformation"]["amountDetails"]
        row = rows[number]
        assert (row.status, row.currency, row.due_date) == (
            truth["status"],
            amounts["currency"],
            date.fromisoformat(truth["invoiceInformation"]["dueDate"]),
        ), number
        assert row.total_amount == Decimal(amounts["totalAmount"]), number
        assert row.balance_amount == Decimal(amounts["balanceAmount"]), number


async def test_an_unchanged_portfolio_makes_no_detail_calls(
    reconciler: Reconciler, cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    settled_portfolio(sandbox_url)
    await reconciled_and_projected(reconciler, engine)
    positions = await event_store_for(engine).last_position()
    requests_before = cybersource.requests_sent

    summary = await reconciler.sweep()

    assert (summary.checked, summary.fetched, summary.failed) == (len(SETTLED_PORTFOLIO), 0, 0)
    # One page of the list per status, and nothing else.
    assert cybersource.requests_sent - requests_before == len(SWEEP_STATUS_ORDER)
    assert await event_store_for(engine).last_position() == positions


async def test_a_full_sweep_fetches_every_invoice(
    reconciler: Reconciler, cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    settled_portfolio(sandbox_url)
    await reconciled_and_projected(reconciler, engine)
    requests_before = cybersource.requests_sent

    summary = await reconciler.sweep(full=True)

    assert (summary.checked, summary.fetched, summary.changed) == (6, 6, 0)
    assert summary.fetch_reasons == {FetchReason.FULL_SWEEP: len(SETTLED_PORTFOLIO)}
    assert cybersource.requests_sent - requests_before == len(SWEEP_STATUS_ORDER) + 6


async def test_an_incremental_sweep_brings_the_ledger_to_exact_agreement_after_unreported_changes(
    reconciler: Reconciler, cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    settled_portfolio(sandbox_url)
    new_invoice(sandbox_url, "S-PARTIAL", "60.00", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/S-PARTIAL/send")
    drive(sandbox_url, "/invoices/S-PARTIAL/pay", {"amount": "10.00", "transactionId": "tx-1"})
    await reconciled_and_projected(reconciler, engine)

    # Changes whose webhooks never arrived (the sandbox delivers none), and one that has none.
    drive(sandbox_url, "/invoices/S-SENT/pay", {"amount": "12.50", "transactionId": "tx-2"})
    drive(sandbox_url, "/invoices/S-CREATED/update", {"totalAmount": "25.00"})
    drive(sandbox_url, "/invoices/S-SENT-2/cancel")
    drive(sandbox_url, "/invoices/S-PARTIAL/pay", {"amount": "15.00", "transactionId": "tx-3"})
    drive(sandbox_url, "/invoices/S-DRAFT/update", {"dueDate": "2027-01-31"})
    new_invoice(sandbox_url, "S-NEW", "70.00")
    drive(sandbox_url, "/invoices/S-NEW/send")

    summary = await reconciler.sweep()
    await project(engine)

    assert summary.failed == 0
    assert summary.fetch_reasons == {
        FetchReason.DISAGREES: 4,  # paid, updated total, canceled, updated due date
        FetchReason.BALANCE_CAN_MOVE: 1,  # the partly paid invoice, paid again
        FetchReason.UNKNOWN_TO_LEDGER: 1,
    }
    assert summary.fetched == 6 and summary.checked == len(SETTLED_PORTFOLIO) + 2
    await assert_ledger_agrees(engine, cybersource, [*SETTLED_PORTFOLIO, "S-PARTIAL", "S-NEW"])
    # Agreement reached: the next sweep fetches only what can move unseen (both now PARTIAL).
    again = await reconciler.sweep()
    assert again.fetch_reasons == {FetchReason.BALANCE_CAN_MOVE: 2} and again.changed == 0


async def test_a_payment_under_review_is_fetched_on_every_sweep_until_it_settles(
    reconciler: Reconciler, cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "S-REVIEW", "80.00")
    drive(sandbox_url, "/invoices/S-REVIEW/send")
    drive(sandbox_url, "/invoices/S-REVIEW/pending", {"amount": "80.00", "transactionId": "tx-r"})
    await reconciled_and_projected(reconciler, engine)
    assert (await reconciler.sweep()).fetch_reasons == {FetchReason.BALANCE_CAN_MOVE: 1}

    drive(sandbox_url, "/invoices/S-REVIEW/accept")
    summary = await reconciler.sweep()
    await project(engine)

    assert summary.changed == 1
    await assert_ledger_agrees(engine, cybersource, ["S-REVIEW"])
    assert (await reconciler.sweep()).fetched == 0


async def test_an_invoice_the_projector_has_not_seen_yet_is_fetched_not_trusted(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    settled_portfolio(sandbox_url)
    await reconciler.sweep(full=True)  # appended, but not projected: the read model is empty

    summary = await reconciler.sweep()

    assert summary.fetch_reasons == {FetchReason.UNKNOWN_TO_LEDGER: len(SETTLED_PORTFOLIO)}
    assert summary.changed == 0


async def test_the_worker_sweeps_in_full_on_its_slow_schedule_even_across_restarts(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    settled_portfolio(sandbox_url)
    swept: list[tuple[bool, int, bool]] = []

    def worker() -> ReconcilerWorker:
        return ReconcilerWorker(
            Reconciler(cybersource, event_store_for(engine), ledger=SqlLedgerView(engine)),
            InvoiceQueries(engine),
            SqlReadModelStore(engine),
            owner="test",
            sweep_interval_seconds=0,
            full_sweep_interval_seconds=3600,
            full_sweeps=SqlSweepSchedule(engine),
            on_sweep=lambda summary, succeeded: swept.append(
                (summary.full, summary.fetched, succeeded)
            ),
        )

    first = worker()
    await first.round()  # no full sweep recorded yet: this one is full
    await project(engine)
    await first.round()
    await worker().round()  # restarted: the full sweep is still recent
    assert swept == [(True, len(SETTLED_PORTFOLIO), True), (False, 0, True), (False, 0, True)]
    assert not await SqlSweepSchedule(engine).full_sweep_due(3600)
    assert await SqlSweepSchedule(engine).full_sweep_due(0)


@pytest.mark.parametrize("invoices", [25, 30])
async def test_list_pages_read_several_at_once_are_the_pages_read_one_by_one(
    cybersource: CybersourceClient, sandbox_url: str, invoices: int
) -> None:
    for index in range(invoices):
        new_invoice(sandbox_url, f"L-{index:03d}", "5.00")

    async def listed(pages_in_flight: int) -> tuple[list[str], int]:
        before = cybersource.requests_sent
        numbers = [
            item["id"]
            async for page in cybersource.iterate_invoice_pages(
                page_size=10, pages_in_flight=pages_in_flight
            )
            for item in page
        ]
        return numbers, cybersource.requests_sent - before

    one_by_one, calls = await listed(1)
    assert len(one_by_one) == len(set(one_by_one)) == invoices and calls == 3
    assert await listed(4) == (one_by_one, 3)
