"""The reconciler against the sandbox: the ledger ends up matching Cybersource, idempotently."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cybersource.envelope import DeliveryHeaders, parse_body
from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import InvoiceState, fold
from service.ingest.notification import read_notification
from service.ingest.translation import notification_events
from service.reconciler.client import CybersourceClient
from service.reconciler.reconciler import Reconciler
from service.store.events.base import EventStore
from service.store.events.for_engine import event_store_for
from tests.support.cybersource_sandbox import FAST, MERCHANT, drive, new_invoice
from tests.support.webhooks import encode, invoice_notification

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cybersource(sandbox_url: str) -> AsyncIterator[CybersourceClient]:
    async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
        yield client


@pytest.fixture
def reconciler(cybersource: CybersourceClient, engine: AsyncEngine) -> Reconciler:
    return Reconciler(cybersource, event_store_for(engine))


def lifecycles(sandbox_url: str) -> None:
    new_invoice(sandbox_url, "R-PAID", allowPartialPayments=True, customerName="Tanya Lee")
    drive(sandbox_url, "/invoices/R-PAID/send")
    drive(sandbox_url, "/invoices/R-PAID/pay", {"amount": "30.00", "transactionId": "tx-1"})
    drive(sandbox_url, "/invoices/R-PAID/pay", {"amount": "70.00", "transactionId": "tx-2"})
    new_invoice(sandbox_url, "R-PARTIAL", "50.00", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/R-PARTIAL/publish")
    drive(sandbox_url, "/invoices/R-PARTIAL/pay", {"amount": "20.00", "transactionId": "tx-3"})
    new_invoice(sandbox_url, "R-CANCELED")
    drive(sandbox_url, "/invoices/R-CANCELED/send")
    drive(sandbox_url, "/invoices/R-CANCELED/cancel")
    new_invoice(sandbox_url, "R-CREATED")
    drive(sandbox_url, "/invoices/R-CREATED/publish")


async def test_a_sweep_brings_the_ledger_to_what_cybersource_says(
    reconciler: Reconciler, cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    lifecycles(sandbox_url)
    summary = await reconciler.sweep()
    assert (summary.checked, summary.changed, summary.failed) == (4, 4, 0)
    store = event_store_for(engine)
    for number in ("R-PAID", "R-PARTIAL", "R-CANCELED", "R-CREATED"):
        truth = await cybersource.get_invoice(number)
        state = fold(number, await store.read_stream(number))
        amounts = truth["orderInformation"]["amountDetails"]
        assert state.status == truth["status"]
        assert state.total_amount == Decimal(amounts["totalAmount"])
        assert state.balance_amount == Decimal(amounts["balanceAmount"])
        paid = [h for h in truth["invoiceHistory"] if h["event"] == "PAYMENT"]
        assert sorted(p.transaction_id for p in state.payments) == sorted(
            h["transactionDetails"]["transactionId"] for h in paid
        )
        assert sum(c.amount for c in state.collections) == sum(
            Decimal(h["transactionDetails"]["amount"]) for h in paid
        )


async def test_reconciling_twice_appends_nothing_the_second_time(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    lifecycles(sandbox_url)
    first = await reconciler.sweep()
    positions = await event_store_for(engine).last_position()
    second = await reconciler.sweep()
    assert first.changed == 4 and second.changed == 0 and second.checked == 4
    assert await event_store_for(engine).last_position() == positions


async def test_a_payment_seen_by_webhook_and_by_reconciler_counts_once(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "R-BOTH")
    drive(sandbox_url, "/invoices/R-BOTH/send")
    drive(sandbox_url, "/invoices/R-BOTH/pay", {"amount": "100.00", "transactionId": "tx-b"})
    store = event_store_for(engine)

    webhook = encode(
        invoice_notification(
            "R-BOTH",
            "invoicing.customer.invoice.paid",
            balance="0.00",
            totalAmount="100.00",
            event_date=datetime.now(UTC).isoformat(),
            organizationID=MERCHANT.merchant_id,
        )
    )
    notification = read_notification(parse_body(webhook), DeliveryHeaders())
    await store.append(notification_events(notification, datetime.now(UTC)))
    outcome = await reconciler.reconcile_invoice("R-BOTH")
    assert outcome.error is None and outcome.appended > 0
    state = await ledger_state(store, "R-BOTH")
    assert state.status == "PAID"
    assert sum(c.amount for c in state.collections) == Decimal("100.00")
    assert [p.transaction_id for p in state.payments] == ["tx-b"]


async def test_an_unknown_invoice_is_reported_not_appended(
    reconciler: Reconciler, engine: AsyncEngine
) -> None:
    outcome = await reconciler.reconcile_invoice("nobody")
    assert outcome.error is not None and "404" in outcome.error
    assert await event_store_for(engine).last_position() == 0


async def test_fraud_review_pending_then_rejected_then_accepted(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "R-FRAUD", "60.00")
    drive(sandbox_url, "/invoices/R-FRAUD/send")
    store = event_store_for(engine)

    async def status_after_reconcile() -> str | None:
        assert (await reconciler.reconcile_invoice("R-FRAUD")).error is None
        return fold("R-FRAUD", await store.read_stream("R-FRAUD")).status

    drive(sandbox_url, "/invoices/R-FRAUD/pending", {"amount": "60.00", "transactionId": "tx-f1"})
    assert await status_after_reconcile() == "PENDING"
    drive(sandbox_url, "/invoices/R-FRAUD/reject")
    assert await status_after_reconcile() == "SENT"
    drive(sandbox_url, "/invoices/R-FRAUD/pending", {"amount": "60.00", "transactionId": "tx-f2"})
    drive(sandbox_url, "/invoices/R-FRAUD/accept")
    assert await status_after_reconcile() == "PAID"
    state = fold("R-FRAUD", await store.read_stream("R-FRAUD"))
    assert [p.transaction_id for p in state.payments] == ["tx-f2"]
    assert sum(c.amount for c in state.collections) == Decimal("60.00")


async def test_an_update_before_payment_changes_the_total(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "R-UPD", "60.00")
    drive(sandbox_url, "/invoices/R-UPD/update", {"totalAmount": "75.00"})
    await reconciler.reconcile_invoice("R-UPD")
    state = fold("R-UPD", await event_store_for(engine).read_stream("R-UPD"))
    assert (state.total_amount, state.balance_amount) == (Decimal("75.00"), Decimal("75.00"))


async def test_invoices_can_be_created_published_or_sent(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    for status in ("DRAFT", "CREATED", "SENT"):
        new_invoice(sandbox_url, f"R-NEW-{status}", status=status)
        await reconciler.reconcile_invoice(f"R-NEW-{status}")
        store = event_store_for(engine)
        state = fold(f"R-NEW-{status}", await store.read_stream(f"R-NEW-{status}"))
        assert state.status == status


async def test_reconciling_again_supersedes_a_stale_notification_dated_after_the_last_answer(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "R-STALE", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/R-STALE/send")
    drive(sandbox_url, "/invoices/R-STALE/pay", {"amount": "30.00", "transactionId": "tx-s1"})
    drive(sandbox_url, "/invoices/R-STALE/pay", {"amount": "70.00", "transactionId": "tx-s2"})
    assert (await reconciler.reconcile_invoice("R-STALE")).appended > 0
    store = event_store_for(engine)
    # The first payment's notification, stamped minutes late, arrives after the answer.
    stale = encode(
        invoice_notification(
            "R-STALE",
            "invoicing.customer.invoice.partial-payment",
            balance="70.00",
            event_date=(datetime.now(UTC) + timedelta(minutes=3)).isoformat(),
            organizationID=MERCHANT.merchant_id,
        )
    )
    notification = read_notification(parse_body(stale), DeliveryHeaders())
    await store.append(notification_events(notification, datetime.now(UTC)))
    state = await ledger_state(store, "R-STALE")
    assert (state.status, state.balance_amount) == ("PAID", Decimal("0.00"))
    assert state.collected_amount == Decimal("100.00")

    # A notification that moved nothing leaves the ledger as Cybersource has it: nothing to add.
    assert (await reconciler.reconcile_invoice("R-STALE")).appended == 0


async def test_a_new_answer_supersedes_a_wrong_notification_dated_before_it(
    reconciler: Reconciler, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "R-DIFF", "40.00")
    drive(sandbox_url, "/invoices/R-DIFF/send")
    assert (await reconciler.reconcile_invoice("R-DIFF")).appended > 0
    store = event_store_for(engine)
    # A notification claiming a cancellation that Cybersource does not show, dated after the
    # ledger's last answer: nothing the ledger holds contradicts it yet.
    wrong = encode(
        invoice_notification(
            "R-DIFF",
            "invoicing.customer.invoice.cancel",
            balance="40.00",
            event_date=datetime.now(UTC).isoformat(),
            organizationID=MERCHANT.merchant_id,
        )
    )
    notification = read_notification(parse_body(wrong), DeliveryHeaders())
    await store.append(notification_events(notification, datetime.now(UTC)))
    assert (await ledger_state(store, "R-DIFF")).status == "CANCELED"
    outcome = await reconciler.reconcile_invoice("R-DIFF")
    assert outcome.appended == 1  # the new answer: the ledger differed from it
    assert (await ledger_state(store, "R-DIFF")).status == "SENT"
    assert (await reconciler.reconcile_invoice("R-DIFF")).appended == 0


async def ledger_state(store: EventStore, number: str) -> InvoiceState:
    key = InvoiceKey(MERCHANT.merchant_id, number)
    events = invoices_in_stream(number, await store.read_stream(number))[key]
    return fold(number, events, key.organization_id)
