"""The REST client against the sandbox, over real sockets, signatures checked on every call."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.cybersource.http_signature import MerchantCredentials
from service.reconciler.answers import (
    CallFailure,
    CallOutcome,
    CybersourceError,
    CybersourceNotFound,
)
from service.reconciler.client import CybersourceClient
from service.reconciler.transport import ClientLimits
from tests.support.cybersource_sandbox import FAST, MERCHANT, drive, new_invoice
from tests.support.organizations_cybersource import OrganizationsCybersource
from tests.support.server import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(sandbox_url: str) -> AsyncIterator[CybersourceClient]:
    async with CybersourceClient(sandbox_url, MERCHANT, FAST) as cybersource:
        yield cybersource


async def test_invoice_details_come_back_with_their_history(
    client: CybersourceClient, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "2670", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/2670/send")
    drive(sandbox_url, "/invoices/2670/pay", {"amount": "40.00", "transactionId": "tx-1"})
    details = await client.get_invoice("2670")
    assert details["status"] == "PARTIAL"
    amounts = details["orderInformation"]["amountDetails"]
    # JSON numbers, as documented; the client reads them as exact Decimals.
    assert (amounts["totalAmount"], amounts["balanceAmount"]) == (Decimal("100.00"), Decimal("60"))
    assert [entry["event"] for entry in details["invoiceHistory"]] == ["PAYMENT", "SEND", "DRAFT"]
    assert details["invoiceHistory"][0]["transactionDetails"] == {
        "transactionId": "tx-1",
        "amount": Decimal("40.00"),
    }


async def test_a_wrong_secret_is_refused_once_and_not_retried(sandbox_url: str) -> None:
    impostor = MerchantCredentials(
        MERCHANT.merchant_id, MERCHANT.key_id, b"not-the-secret-0123456789abcdef"
    )
    async with CybersourceClient(sandbox_url, impostor, FAST) as client:
        with pytest.raises(
            CybersourceError, match="Get Invoice Details: HTTP 401 AUTHENTICATION_FAILED"
        ):
            await client.get_invoice("1")
        assert client.requests_sent == 1


async def test_an_unknown_invoice_is_not_found_and_not_retried(client: CybersourceClient) -> None:
    with pytest.raises(CybersourceNotFound, match="HTTP 404 NOTFOUND"):
        await client.get_invoice("does-not-exist")
    assert client.requests_sent == 1


async def test_429_and_502_are_retried_with_backoff(
    client: CybersourceClient, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "7")
    drive(sandbox_url, "/faults", {"statuses": [429, 502]})
    details = await client.get_invoice("7")
    assert details["id"] == "7"
    assert client.requests_sent == 3


async def test_retries_are_bounded_and_the_error_names_the_call_and_reason(
    client: CybersourceClient, sandbox_url: str
) -> None:
    drive(sandbox_url, "/faults", {"statuses": [502] * FAST.attempts_max})
    with pytest.raises(CybersourceError, match="Get Invoice Details: HTTP 502 SYSTEM_ERROR"):
        await client.get_invoice("7")
    assert client.requests_sent == FAST.attempts_max


async def test_network_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with CybersourceClient(f"http://127.0.0.1:{closed_port}", MERCHANT, FAST) as client:
        with pytest.raises(CybersourceError, match="Get List of Invoices: ConnectError"):
            await client.list_invoices(0, 10)
        assert client.requests_sent == FAST.attempts_max


async def test_listing_pages_to_the_end_and_filters_by_status(
    client: CybersourceClient, sandbox_url: str
) -> None:
    for number in range(25):
        new_invoice(sandbox_url, f"L{number}")
        if number % 5 == 0:
            drive(sandbox_url, f"/invoices/L{number}/send")
    every = [invoice["id"] async for invoice in client.iterate_invoices(page_size=10)]
    assert sorted(every) == sorted(f"L{n}" for n in range(25))
    sent = [invoice["id"] async for invoice in client.iterate_invoices(status="SENT", page_size=2)]
    assert sorted(sent) == sorted(f"L{n}" for n in range(0, 25, 5))


async def test_posts_are_signed_with_a_digest_and_accepted(client: CybersourceClient) -> None:
    key = await client.create_webhook_key("ledgertest")
    assert key["keyInformation"]["keyType"] == "sharedSecret"
    subscription = await client.create_webhook_subscription(
        "ledgertest",
        "https://ledger.example.com/webhooks/cybersource",
        ["invoicing.customer.invoice.paid"],
    )
    assert subscription["products"][0]["eventTypes"] == ["invoicing.customer.invoice.paid"]
    assert subscription["webhookId"]


async def test_the_client_keeps_to_its_rate_limit(sandbox_url: str) -> None:
    new_invoice(sandbox_url, "R")
    limits = ClientLimits(max_requests_per_second=5)
    async with CybersourceClient(sandbox_url, MERCHANT, limits) as client:
        started = time.monotonic()
        for _ in range(12):
            await client.get_invoice("R")
        elapsed = time.monotonic() - started
    # Five a second, a tenth of a second's worth at once: twelve calls need eleven gaps of 0.2 s.
    assert elapsed >= 2.0


async def test_transaction_details_come_back_read_as_exact_amounts(
    client: CybersourceClient, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "T-1", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/T-1/send")
    paid = drive(sandbox_url, "/invoices/T-1/pay", {"amount": "40.10", "transactionId": "tx-9"})
    answer = await client.transaction_details("tx-9")
    assert (answer.id, answer.amount, answer.currency) == ("tx-9", Decimal("40.10"), "USD")
    history = paid["invoiceHistory"]
    assert isinstance(history, list)
    paid_at = datetime.fromisoformat(history[0]["date"]).replace(microsecond=0)
    assert answer.submitted_at == paid_at and answer.submitted_at.tzinfo is not None
    assert answer.application_information is not None
    applications = answer.application_information.applications
    assert "ics_bill" in [application.name for application in applications]
    assert client.requests_sent == 1


async def test_an_unknown_transaction_is_not_found_and_not_retried(
    client: CybersourceClient,
) -> None:
    with pytest.raises(CybersourceNotFound, match="Get Transaction Details: HTTP 404 NOTFOUND"):
        await client.transaction_details("no-such-transaction")
    assert client.requests_sent == 1


async def test_transaction_details_are_retried_on_429_and_5xx(
    client: CybersourceClient, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "T-2")
    drive(sandbox_url, "/invoices/T-2/send")
    drive(sandbox_url, "/invoices/T-2/pay", {"amount": "100.00", "transactionId": "tx-r"})
    drive(sandbox_url, "/faults", {"statuses": [502, 429]})
    assert (await client.transaction_details("tx-r")).amount == Decimal("100.00")
    assert client.requests_sent == 3


TRANSACTION = {
    "id": "tx-1",
    "submitTimeUtc": "2026-03-02T10:15:30Z",
    "status": "TRANSMITTED",
    "orderInformation": {"amountDetails": {"totalAmount": 12.5, "currency": "EUR"}},
}


@pytest.fixture
def organizations() -> Iterator[tuple[OrganizationsCybersource, str]]:
    fake = OrganizationsCybersource([MERCHANT])
    fake.transactions[MERCHANT.merchant_id] = {"tx-1": TRANSACTION}
    with serving(fake.app()) as url:
        yield fake, url


class Observed(list[tuple[CallOutcome, CallFailure | None]]):
    def __call__(self, outcome: CallOutcome, failure: CallFailure | None) -> None:
        self.append((outcome, failure))


async def test_either_spelling_of_the_submit_time_and_numbers_as_amounts_are_read(
    organizations: tuple[OrganizationsCybersource, str],
) -> None:
    fake, url = organizations
    as_the_sdk_names_it = dict(TRANSACTION)
    del as_the_sdk_names_it["submitTimeUtc"]
    fake.canned.append((200, {**as_the_sdk_names_it, "submitTimeUTC": "2026-03-02T10:15:31Z"}))
    async with CybersourceClient(url, MERCHANT, FAST) as client:
        first = await client.transaction_details("tx-1")
        second = await client.transaction_details("tx-1")
    assert first.submitted_at == datetime(2026, 3, 2, 10, 15, 31, tzinfo=UTC)
    assert second.submitted_at == datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
    assert second.amount == Decimal("12.5") and isinstance(second.amount, Decimal)


@pytest.mark.parametrize(
    ("answer", "field"),
    [({**TRANSACTION, "orderInformation": {"amountDetails": {"currency": "EUR"}}},
      "orderInformation.amountDetails.totalAmount"),
     ({**TRANSACTION, "orderInformation": {"amountDetails": {"totalAmount": "-1.00"}}},
      "orderInformation.amountDetails.totalAmount"),
     ({**TRANSACTION, "orderInformation": {"amountDetails": {"totalAmount": "1", "currency": "€"}}},
      "orderInformation.amountDetails.currency"),
     ({key: value for key, value in TRANSACTION.items() if key != "id"}, "id"),
     ({**TRANSACTION, "id": "tx-2"}, "id: not the transaction asked for")],
)  # fmt: skip
async def test_an_answer_that_does_not_fit_is_a_failed_call_naming_the_field(
    organizations: tuple[OrganizationsCybersource, str], answer: dict[str, Any], field: str
) -> None:
    fake, url = organizations
    fake.canned.append((200, answer))
    observed = Observed()
    async with CybersourceClient(url, MERCHANT, FAST, observer=observed) as client:
        with pytest.raises(CybersourceError, match=f"Get Transaction Details: {field}") as raised:
            await client.transaction_details("tx-1")
        assert client.requests_sent == 1  # an unreadable answer is not asked for again
    assert raised.value.failure is CallFailure.INVALID_ANSWER
    assert observed == [(CallOutcome.FAILED, CallFailure.INVALID_ANSWER)]
