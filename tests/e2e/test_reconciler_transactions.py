"""The reconciler asks the Transaction Details API about the payments whose amount the ledger
cannot attribute, records each answer once, and asks nothing when the history tells."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from service.domain.events import EventSource, InvoiceEventType, RecordedEvent
from service.domain.payloads import TransactionObserved, decode
from service.reconciler.client import CybersourceClient
from service.reconciler.outcomes import TransactionLookup
from service.reconciler.reconciler import TRANSACTION_LOOKUPS_PER_INVOICE_MAX, Reconciler
from service.sandbox.app import create_sandbox_app
from service.sandbox.invoices import TransactionDetailsShown
from service.sandbox.options import SandboxOptions
from service.store.events.for_engine import event_store_for
from tests.support.cybersource_sandbox import FAST, MERCHANT, drive, new_invoice
from tests.support.organizations_cybersource import OrganizationsCybersource
from tests.support.server import serving

pytestmark = pytest.mark.anyio

ORGANIZATION = MERCHANT.merchant_id


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    """A Cybersource whose PAYMENT history entries name their transaction, not its amount."""
    options = SandboxOptions(payment_transaction_details=TransactionDetailsShown.TRANSACTION_ID)
    with serving(create_sandbox_app([MERCHANT], options=options)) as url:
        yield url


@pytest.fixture
async def cybersource(sandbox_url: str) -> AsyncIterator[CybersourceClient]:
    async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
        yield client


class Lookups(list[TransactionLookup]):
    def __call__(self, outcome: TransactionLookup) -> None:
        self.append(outcome)


def reconciler_for(client: CybersourceClient, engine: AsyncEngine, lookups: Lookups) -> Reconciler:
    return Reconciler(client, event_store_for(engine), on_transaction_lookup=lookups)


async def observed(engine: AsyncEngine, number: str) -> list[RecordedEvent]:
    stream = await event_store_for(engine).read_stream(number)
    return [event for event in stream if event.type == InvoiceEventType.TRANSACTION_OBSERVED]


async def observed_facts(engine: AsyncEngine, number: str) -> list[TransactionObserved]:
    facts = [decode(event) for event in await observed(engine, number)]
    assert all(isinstance(fact, TransactionObserved) for fact in facts)
    return facts  # type: ignore[return-value]


def installments(sandbox_url: str, number: str, *amounts: str, **payment: str) -> None:
    total = sum((Decimal(amount) for amount in amounts), Decimal(0))
    new_invoice(sandbox_url, number, str(total), allowPartialPayments=True)
    drive(sandbox_url, f"/invoices/{number}/send")
    for index, amount in enumerate(amounts, start=1):
        body = {"amount": amount, "transactionId": f"{number}-tx{index}", **payment}
        drive(sandbox_url, f"/invoices/{number}/pay", body)


async def test_each_payment_without_an_amount_is_recorded_once_from_its_transaction(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    installments(sandbox_url, "I-1", "30.00", "45.50", "24.50")
    lookups = Lookups()
    reconciler = reconciler_for(cybersource, engine, lookups)

    outcome = await reconciler.reconcile_invoice("I-1")
    assert (outcome.error, outcome.transactions_observed) == (None, 3)
    assert lookups == [TransactionLookup.RECORDED] * 3
    assert cybersource.requests_sent == 1 + 3
    events = await observed(engine, "I-1")
    facts = [decode(event) for event in events]
    assert facts == [
        TransactionObserved(ORGANIZATION, "I-1", f"I-1-tx{n}", Decimal(amount), "USD")
        for n, amount in ((1, "30.00"), (2, "45.50"), (3, "24.50"))
    ]
    details = await cybersource.get_invoice("I-1")
    paid_at = {
        entry["transactionDetails"]["transactionId"]: datetime.fromisoformat(entry["date"])
        for entry in details["invoiceHistory"]
        if entry["event"] == "PAYMENT"
    }
    for event, fact in zip(events, facts, strict=True):
        assert isinstance(fact, TransactionObserved)
        assert event.source is EventSource.RECONCILER
        key = f"cybersource:transaction:{ORGANIZATION}:{fact.transaction_id}"
        assert event.idempotency_key == key
        # Dated when the transaction was submitted (to the second), not when it was asked for.
        assert event.occurred_at == paid_at[fact.transaction_id].replace(microsecond=0)

    sent_before = cybersource.requests_sent
    again = await reconciler.reconcile_invoice("I-1")
    assert (again.appended, again.transactions_observed) == (0, 0)
    assert cybersource.requests_sent == sent_before + 1  # the details only: none asked twice
    assert len(await observed(engine, "I-1")) == 3


async def test_nothing_is_asked_when_the_history_carries_the_amounts(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    installments(sandbox_url, "I-2", "30.00", "70.00", transactionDetails="amount")
    lookups = Lookups()
    outcome = await reconciler_for(cybersource, engine, lookups).reconcile_invoice("I-2")
    assert outcome.error is None and outcome.appended > 0
    assert (lookups, cybersource.requests_sent) == ([], 1)
    assert await observed(engine, "I-2") == []


async def test_a_single_payment_the_balance_accounts_for_is_not_asked_about(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "I-3", "31.00", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/I-3/send")
    drive(sandbox_url, "/invoices/I-3/pay", {"amount": "30.00", "transactionId": "I-3-tx1"})
    lookups = Lookups()
    await reconciler_for(cybersource, engine, lookups).reconcile_invoice("I-3")
    # The only payment of unknown amount: total - balance attributes it.
    assert (lookups, cybersource.requests_sent) == ([], 1)


async def test_a_payment_beside_one_that_shows_nothing_is_asked_about(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    new_invoice(sandbox_url, "I-5", "31.00", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/I-5/send")
    drive(sandbox_url, "/invoices/I-5/pay", {"amount": "30.00", "transactionId": "I-5-tx1"})
    drive(sandbox_url, "/invoices/I-5/pay", {"amount": "1.00", "transactionDetails": "none"})
    lookups = Lookups()
    await reconciler_for(cybersource, engine, lookups).reconcile_invoice("I-5")
    # Two payments share what the balance shows; the one naming its transaction is asked
    # about, and the other is what remains.
    assert lookups == [TransactionLookup.RECORDED]
    [fact] = await observed_facts(engine, "I-5")
    assert (fact.transaction_id, fact.amount) == ("I-5-tx1", Decimal("30.00"))


async def test_the_lookups_for_one_answer_are_bounded_and_the_rest_follow_next_time(
    cybersource: CybersourceClient, sandbox_url: str, engine: AsyncEngine
) -> None:
    count = TRANSACTION_LOOKUPS_PER_INVOICE_MAX + 2
    installments(sandbox_url, "I-4", *(["1.00"] * count))
    lookups = Lookups()
    reconciler = reconciler_for(cybersource, engine, lookups)
    first = await reconciler.reconcile_invoice("I-4")
    assert first.transactions_observed == TRANSACTION_LOOKUPS_PER_INVOICE_MAX
    second = await reconciler.reconcile_invoice("I-4")
    assert second.transactions_observed == 2
    assert lookups == [TransactionLookup.RECORDED] * count
    transactions = {fact.transaction_id for fact in await observed_facts(engine, "I-4")}
    assert transactions == {f"I-4-tx{n}" for n in range(1, count + 1)}


def two_unattributed_payments(fake: OrganizationsCybersource, number: str) -> None:
    """An invoice paid in two installments whose history names only the transactions, and
    whose answer leaves the balance out: nothing the ledger holds tells either amount."""
    fake.add_invoice(ORGANIZATION, number, "PAID", "100.00")
    invoice = fake.invoices[ORGANIZATION][number]
    del invoice["orderInformation"]["amountDetails"]["balanceAmount"]
    invoice["invoiceHistory"] = [
        {"event": "PAYMENT", "date": "2026-01-07T09:00:00Z",
         "transactionDetails": {"transactionId": f"{number}-b"}},
        {"event": "PAYMENT", "date": "2026-01-06T09:00:00Z",
         "transactionDetails": {"transactionId": f"{number}-a"}},
        *invoice["invoiceHistory"],
    ]  # fmt: skip


def transaction(transaction_id: str, amount: str) -> dict[str, Any]:
    return {
        "id": transaction_id,
        "submitTimeUTC": "2026-01-06T09:00:00Z",
        "orderInformation": {"amountDetails": {"totalAmount": amount, "currency": "USD"}},
    }


@pytest.fixture
def organizations() -> Iterator[tuple[OrganizationsCybersource, str]]:
    fake = OrganizationsCybersource([MERCHANT])
    with serving(fake.app()) as url:
        yield fake, url


async def test_a_transaction_cybersource_does_not_know_appends_nothing_and_is_counted(
    organizations: tuple[OrganizationsCybersource, str], engine: AsyncEngine
) -> None:
    fake, url = organizations
    two_unattributed_payments(fake, "N-1")
    fake.transactions[ORGANIZATION] = {"N-1-a": transaction("N-1-a", "40.00")}
    lookups = Lookups()
    async with CybersourceClient(url, MERCHANT, FAST) as client:
        with capture_logs() as logs:
            outcome = await reconciler_for(client, engine, lookups).reconcile_invoice("N-1")
    assert (outcome.error, outcome.transactions_observed) == (None, 1)
    assert lookups == [TransactionLookup.RECORDED, TransactionLookup.NOT_FOUND]
    [fact] = await observed_facts(engine, "N-1")
    assert fact.transaction_id == "N-1-a"
    [entry] = [entry for entry in logs if entry["event"] == "reconciler.transaction_not_found"]
    assert (entry["organization_id"], entry["invoice_number"], entry["transaction_id"]) == (
        ORGANIZATION, "N-1", "N-1-b"
    )  # fmt: skip
    logged = json.dumps(logs)
    assert "Tanya" not in logged and "tanya@example.com" not in logged


async def test_a_failed_lookup_is_the_invoices_error_and_is_asked_again_next_time(
    organizations: tuple[OrganizationsCybersource, str], engine: AsyncEngine
) -> None:
    fake, url = organizations
    two_unattributed_payments(fake, "F-1")
    fake.transactions[ORGANIZATION] = {
        "F-1-a": transaction("F-1-a", "40.00"), "F-1-b": transaction("F-1-b", "60.00")
    }  # fmt: skip
    fake.transaction_faults.extend([502] * FAST.attempts_max)
    lookups = Lookups()
    async with CybersourceClient(url, MERCHANT, FAST) as client:
        reconciler = reconciler_for(client, engine, lookups)
        failed = await reconciler.reconcile_invoice("F-1")
        assert failed.error is not None and "Get Transaction Details: HTTP 502" in failed.error
        assert failed.appended > 0 and failed.transactions_observed == 0
        assert lookups == [TransactionLookup.FAILED]  # the second was left for next time
        assert await observed(engine, "F-1") == []
        retried = await reconciler.reconcile_invoice("F-1")
        assert (retried.error, retried.transactions_observed) == (None, 2)
        sent_before = client.requests_sent
        again = await reconciler.reconcile_invoice("F-1")
        assert (again.appended, client.requests_sent) == (0, sent_before + 1)  # details only
    assert lookups == [TransactionLookup.FAILED, *[TransactionLookup.RECORDED] * 2]
    amounts = {fact.transaction_id: fact.amount for fact in await observed_facts(engine, "F-1")}
    assert amounts == {"F-1-a": Decimal("40.00"), "F-1-b": Decimal("60.00")}
