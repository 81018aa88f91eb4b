"""Invoices paid in installments on several days, whose history names each payment's
transaction but not its amount: after one sweep, which asks the Transaction Details API, the
ledger has every invoice's status, total and balance as Cybersource does, and every day's
collections in every currency."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from service.app import create_app
from service.reconciler.client import CybersourceClient
from service.reconciler.outcomes import SweepSummary, TransactionLookup
from service.reconciler.reconciler import Reconciler
from service.sandbox.app import CybersourceSandbox
from service.sandbox.invoices import HistoryEvent, SandboxInvoice, TransactionDetailsShown
from service.sandbox.options import SandboxOptions
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from tests.support.cybersource_sandbox import FAST, MERCHANT
from tests.support.server import serving

INVOICES = 12
CURRENCIES = {"USD": Decimal("0.01"), "EUR": Decimal("0.01"), "JPY": Decimal(1)}
DAY_SECONDS = 24 * 3600
FIRST_DAY_BACK = 40  # the first invoice is sent this many days ago


class SandboxClock:
    """Now, moved back by whole days while the customers pay; back to now for signed calls
    (the sandbox refuses a Date header far from its clock)."""

    def __init__(self) -> None:
        self.days_back = 0.0

    def __call__(self) -> float:
        return time.time() - self.days_back * DAY_SECONDS


def play(sandbox: httpx.Client, clock: SandboxClock, rng: random.Random) -> None:
    """Each invoice sent, then paid in two to four installments on different days (some
    through a fraud review, one rejected first), some left partly paid."""
    for index in range(INVOICES):
        number = f"M-{index}"
        currency = list(CURRENCIES)[index % len(CURRENCIES)]
        quantum = CURRENCIES[currency]
        total = quantum * rng.randrange(10_000, 90_000)
        clock.days_back = FIRST_DAY_BACK - index
        sandbox.post(
            "/sandbox/invoices",
            json={"invoiceNumber": number, "totalAmount": str(total), "currency": currency,
                  "dueDate": "2026-12-31", "allowPartialPayments": True, "status": "SENT"},
        ).raise_for_status()  # fmt: skip
        balance = total
        installments = rng.randrange(2, 5)
        for installment in range(installments):
            clock.days_back -= rng.choice([0.5, 1, 2, 3])
            last = installment == installments - 1 and index % 3 != 0
            amount = balance if last else quantum * rng.randrange(1, int(balance / quantum / 2))
            payment = {"amount": str(amount), "transactionId": f"{number}-t{installment}"}
            path = f"/sandbox/invoices/{number}"
            if installment == 1 and index % 4 == 1:
                rejected = {**payment, "transactionId": f"{number}-rejected"}
                sandbox.post(f"{path}/pending", json=rejected).raise_for_status()
                sandbox.post(f"{path}/reject").raise_for_status()
            if rng.random() < 0.25:
                sandbox.post(f"{path}/pending", json=payment).raise_for_status()
                sandbox.post(f"{path}/accept").raise_for_status()
            else:
                sandbox.post(f"{path}/pay", json=payment).raise_for_status()
            balance -= amount
    clock.days_back = 0


def collections_by_day(invoices: list[SandboxInvoice]) -> dict[tuple[str, str], Decimal]:
    """What Cybersource collected, per UTC day and currency, from its own payments."""
    collected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for invoice in invoices:
        for entry in invoice.history:
            if entry.event is HistoryEvent.PAYMENT and entry.payment is not None:
                key = (entry.date.date().isoformat(), invoice.content.currency)
                collected[key] += entry.payment.amount
    return dict(collected)


async def sweep_once(sandbox_url: str, database_url: str) -> tuple[SweepSummary, list[Any], int]:
    engine = create_engine(resolve_database_url(database_url))
    lookups: list[TransactionLookup] = []
    try:
        async with CybersourceClient(sandbox_url, MERCHANT, FAST) as client:
            reconciler = Reconciler(
                client, event_store_for(engine), on_transaction_lookup=lookups.append
            )
            summary = await reconciler.sweep()
        return summary, lookups, await event_store_for(engine).last_position()
    finally:
        await engine.dispose()


def test_installments_without_amounts_match_cybersource_after_one_sweep(
    database_url: str,
) -> None:
    clock = SandboxClock()
    options = SandboxOptions(payment_transaction_details=TransactionDetailsShown.TRANSACTION_ID)
    cybersource = CybersourceSandbox([MERCHANT], clock=clock, options=options)
    settings = load_settings(database_url=database_url)
    with (
        serving(cybersource.app()) as sandbox_url,
        serving(create_app(settings)) as ledger_url,
        httpx.Client(base_url=sandbox_url, timeout=30) as sandbox,
        httpx.Client(base_url=ledger_url, timeout=30) as ledger,
    ):
        play(sandbox, clock, random.Random(5))
        invoices = cybersource.organizations.invoices_of(MERCHANT.merchant_id).listed()
        assert len(invoices) == INVOICES
        payments = sum(entry.event is HistoryEvent.PAYMENT for i in invoices for entry in i.history)

        summary, lookups, position = asyncio.run(sweep_once(sandbox_url, database_url))
        assert (summary.checked, summary.failed) == (INVOICES, 0), summary.errors
        # Every payment of an invoice paid in several installments had to be asked about.
        assert lookups == [TransactionLookup.RECORDED] * payments

        for invoice in invoices:
            mine = ledger.get(
                f"/v1/invoices/{invoice.invoice_number}", params={"minPosition": position}
            ).json()
            assert mine["status"] == invoice.status.value, invoice.invoice_number
            assert Decimal(mine["totalAmount"]) == invoice.content.total_amount
            assert Decimal(mine["balanceAmount"]) == invoice.balance_amount

        truth = collections_by_day(invoices)
        first_day = min(day for day, _ in truth)
        report = ledger.get(
            "/v1/reports/collections",
            params={"from": first_day, "to": (date.today() + timedelta(days=1)).isoformat(),
                    "interval": "day", "minPosition": position},
        ).json()  # fmt: skip
        assert not [item for item in report["items"] if item["incomplete"]]
        mine_by_day = {
            (item["period"], item["currency"]): Decimal(item["amount"])
            for item in report["items"]
            if Decimal(item["amount"]) != 0
        }
        assert mine_by_day == truth
        assert len({day for day, _ in truth}) > 10 and {c for _, c in truth} == set(CURRENCIES)
