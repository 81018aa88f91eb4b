"""The sandbox's invoicing REST API over a real socket, as Cybersource documents it: signed
calls only, documented bodies and errors, amounts as JSON numbers, paging that keeps the status
filter, organizations kept apart, and the webhooks Cybersource sends for each change."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from service.cybersource.http_signature import MerchantCredentials, http_date, sign_request
from service.sandbox.app import create_sandbox_app
from service.sandbox.deliveries import WebhookDeliveries, WebhookTarget
from service.sandbox.event_dates import EventDateOrder, EventTiming
from service.sandbox.invoices import TransactionDetailsShown
from service.sandbox.options import SandboxOptions
from tests.support.receiver import Receiver, receiving_webhooks
from tests.support.server import serving

PORTFOLIO = MerchantCredentials(
    merchant_id="portfolio",
    key_id="0b6f0c63-3b2a-4d1e-9f4a-5a6b7c8d9e0f",
    secret_key=b"portfolio-shared-secret-01234567",
    organization_ids=("org-a", "org-b"),
)
WEBHOOK_KEY = base64.b64decode(base64.b64encode(b"webhook-key-0123456789abcdef0123"))


class Cybersource:
    """Signed calls to the sandbox for one organization of the portfolio."""

    def __init__(self, http: httpx.Client, organization_id: str = "org-a") -> None:
        self.http = http
        self.organization_id = organization_id

    def call(self, method: str, path: str, document: Any = None) -> httpx.Response:
        body = b"" if document is None else json.dumps(document).encode()
        headers = sign_request(
            PORTFOLIO,
            method=method,
            host=self.http.base_url.netloc.decode(),
            path_and_query=path,
            date=http_date(time.time()),
            body=body,
            organization_id=self.organization_id,
        )
        return self.http.request(method, path, content=body, headers=headers)

    def create(self, number: str | None = None, **invoice: Any) -> httpx.Response:
        information = {"description": "Consulting", "dueDate": "2026-12-31", **invoice}
        if number is not None:
            information["invoiceNumber"] = number
        return self.call("POST", "/invoicing/v2/invoices", {
            "customerInformation": {"name": "Tanya Lee", "email": "tanya@example.com"},
            "invoiceInformation": information,
            "orderInformation": {"amountDetails": {"totalAmount": "247.86", "currency": "USD"}},
        })  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with receiving_webhooks() as receiving:
        yield receiving


def sandbox(
    webhook_url: str | None = None,
    order: EventDateOrder | None = None,
    options: SandboxOptions | None = None,
    *,
    include_payment_amount: bool = False,
) -> Any:
    deliveries = None
    if webhook_url is not None:
        deliveries = WebhookDeliveries(
            WebhookTarget(webhook_url, "key-1", WEBHOOK_KEY),
            timing=EventTiming(offset_seconds_max=1, order=order, seed=3),
            include_payment_amount=include_payment_amount,
        )
    return serving(
        create_sandbox_app([PORTFOLIO], deliveries=deliveries, options=options or SandboxOptions())
    )


@pytest.fixture
def cybersource() -> Iterator[Cybersource]:
    with sandbox() as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Cybersource(http)


def test_an_unsigned_or_badly_signed_call_is_refused(cybersource: Cybersource) -> None:
    unsigned = cybersource.http.get("/invoicing/v2/invoices?offset=0&limit=10")
    assert unsigned.status_code == 401
    assert unsigned.json()["reason"] == "AUTHENTICATION_FAILED"
    stranger = Cybersource(cybersource.http, "org-c")
    with pytest.raises(ValueError):  # the key does not act for it: nothing to sign
        stranger.call("GET", "/invoicing/v2/invoices?offset=0&limit=10")


def test_create_and_send_answers_the_documented_document_with_numbers(
    cybersource: Cybersource,
) -> None:
    created = cybersource.create("98768", sendImmediately=True, deliveryMode="email")
    assert created.status_code == 201
    assert '"totalAmount":247.86' in created.text and '"balanceAmount":247.86' in created.text
    document = created.json()
    assert (document["id"], document["status"]) == ("98768", "SENT")
    assert document["_links"]["deliver"] == {"href": "/v2/invoices/98768/delivery",
                                             "method": "POST"}  # fmt: skip
    assert document["invoiceInformation"]["deliveryMode"] == "Email"
    assert document["invoiceInformation"]["paymentLink"].endswith("?version=v2.1")
    assert [entry["event"] for entry in document["invoiceHistory"]] == ["SEND", "DRAFT"]


@pytest.mark.parametrize(
    ("fields", "status", "events"),
    [({}, "DRAFT", ["DRAFT"]),
     ({"deliveryMode": "email"}, "DRAFT", ["DRAFT"]),
     ({"sendImmediately": True, "deliveryMode": "none"}, "CREATED", ["CREATE", "DRAFT"])],
)  # fmt: skip
def test_the_other_creation_methods(
    cybersource: Cybersource, fields: dict[str, Any], status: str, events: list[str]
) -> None:
    document = cybersource.create(**fields).json()
    assert document["status"] == status
    assert [entry["event"] for entry in document["invoiceHistory"]] == events


def test_errors_come_in_the_documented_body(cybersource: Cybersource) -> None:
    invalid = cybersource.call("POST", "/invoicing/v2/invoices", {"invoiceInformation": {}})
    assert invalid.status_code == 400
    body = invalid.json()
    assert set(body) == {"submitTimeUtc", "status", "reason", "message", "details"}
    assert (body["status"], body["reason"]) == ("BADREQUEST", "VALIDATION_ERRORS")
    assert {"field": "invoiceInformation.dueDate", "reason": "MISSING_FIELD"} in body["details"]

    cybersource.create("7")
    duplicate = cybersource.create("7")
    assert duplicate.json()["reason"] == "DUPLICATE_RECORD"
    missing = cybersource.call("GET", "/invoicing/v2/invoices/404")
    assert missing.status_code == 404
    assert (missing.json()["status"], missing.json()["reason"]) == ("NOTFOUND", "NOTFOUND")


def test_updates_replace_the_invoice_until_a_payment_arrives(cybersource: Cybersource) -> None:
    cybersource.create("U-1", sendImmediately=True, allowPartialPayments=True)
    replacement = {
        "customerInformation": {"email": "new@example.com"},
        "invoiceInformation": {"dueDate": "2027-01-31", "description": "Revised"},
        "orderInformation": {"amountDetails": {"totalAmount": 1000, "currency": "JPY"}},
    }
    updated = cybersource.call("PUT", "/invoicing/v2/invoices/U-1", replacement).json()
    assert "name" not in updated["customerInformation"]
    assert updated["orderInformation"]["amountDetails"]["balanceAmount"] == 1000
    assert updated["invoiceHistory"][0]["event"] == "UPDATE"
    # The replacement left out allowPartialPayments: only the whole amount can be paid.
    partial = cybersource.http.post("/sandbox/invoices/U-1/pay", json={"amount": "100"})
    assert partial.json()["reason"] == "ACTION_NOT_ALLOWED"
    cybersource.http.post("/sandbox/invoices/U-1/pay?organizationId=org-a",
                          json={"amount": "1000"}).raise_for_status()  # fmt: skip
    refused = cybersource.call("PUT", "/invoicing/v2/invoices/U-1", replacement)
    assert (refused.status_code, refused.json()["reason"]) == (400, "ACTION_NOT_ALLOWED")
    canceled = cybersource.call("POST", "/invoicing/v2/invoices/U-1/cancelation")
    assert canceled.json()["reason"] == "ACTION_NOT_ALLOWED"


def test_listing_pages_newest_first_and_next_keeps_the_status(cybersource: Cybersource) -> None:
    for number in range(5):
        cybersource.create(f"L{number}", sendImmediately=number % 2 == 0)
    page = cybersource.call("GET", "/invoicing/v2/invoices?offset=0&limit=2&status=SENT").json()
    assert page["totalInvoices"] == 3
    assert [invoice["id"] for invoice in page["invoices"]] == ["L4", "L2"]
    assert page["_links"]["next"]["href"] == "/v2/invoices/?offset=2&limit=2&status=SENT"
    summary = page["invoices"][0]
    assert summary["createdDate"].endswith("Z") and "invoiceHistory" not in summary
    assert summary["_links"]["self"]["href"] == "/v2/invoices/L4"
    last = cybersource.call("GET", "/invoicing/v2/invoices?offset=2&limit=2&status=SENT").json()
    assert [invoice["id"] for invoice in last["invoices"]] == ["L0"] and "next" not in last[
        "_links"
    ]
    unknown = cybersource.call("GET", "/invoicing/v2/invoices?offset=0&limit=2&status=OPEN")
    assert unknown.status_code == 400


def test_organizations_keep_their_own_invoices_and_numbers(cybersource: Cybersource) -> None:
    other = Cybersource(cybersource.http, "org-b")
    assert cybersource.create("1001").status_code == 201
    assert other.create("1001", sendImmediately=True).status_code == 201
    assert cybersource.call("GET", "/invoicing/v2/invoices/1001").json()["status"] == "DRAFT"
    assert other.call("GET", "/invoicing/v2/invoices/1001").json()["status"] == "SENT"
    cybersource.http.post("/sandbox/invoices/1001/pay?organizationId=org-b",
                          json={"amount": "247.86"}).raise_for_status()  # fmt: skip
    assert other.call("GET", "/invoicing/v2/invoices/1001").json()["status"] == "PAID"
    assert cybersource.call("GET", "/invoicing/v2/invoices/1001").json()["status"] == "DRAFT"


def test_generated_numbers_never_collide(cybersource: Cybersource) -> None:
    cybersource.create("2")
    numbers = {cybersource.create().json()["id"] for _ in range(3)}
    assert len(numbers) == 3 and "2" not in numbers


def test_webhooks_follow_send_pay_and_cancel_only_and_name_the_organization(
    receiver: tuple[Receiver, str],
) -> None:
    webhooks, url = receiver
    with sandbox(url) as sandbox_url, httpx.Client(base_url=sandbox_url, timeout=30) as http:
        org_b = Cybersource(http, "org-b")
        org_b.create("W-1", allowPartialPayments=True)  # a draft: no webhook
        org_b.call("POST", "/invoicing/v2/invoices/W-1/publication").raise_for_status()
        org_b.call("POST", "/invoicing/v2/invoices/W-1/delivery").raise_for_status()
        http.post("/sandbox/invoices/W-1/pending?organizationId=org-b", json={"amount": "47.86"})
        http.post("/sandbox/invoices/W-1/reject?organizationId=org-b")
        http.post("/sandbox/invoices/W-1/pay?organizationId=org-b", json={"amount": "47.86"})
        org_b.create("W-2", sendImmediately=True)
        org_b.call("POST", "/invoicing/v2/invoices/W-2/cancelation").raise_for_status()
        received = webhooks.wait_for(4)
        time.sleep(0.2)  # nothing more should come
    assert len(webhooks.received) == 4
    types = sorted(body["eventType"].rsplit(".", 1)[1] for _, body in received)
    assert types == ["cancel", "partial-payment", "send", "send"]
    for headers, body in received:
        data = body["payloads"][0]["data"]
        assert headers["v-c-organization-id"] == data["organizationID"] == "org-b"
        assert not {"totalAmount", "paymentAmount", "transactionId"} & set(data)
        assert isinstance(data["balanceAmount"], str)


@pytest.mark.parametrize("order", list(EventDateOrder))
def test_a_webhook_is_dated_as_the_timing_knob_says(
    receiver: tuple[Receiver, str], order: EventDateOrder
) -> None:
    webhooks, url = receiver
    with sandbox(url, order) as sandbox_url, httpx.Client(base_url=sandbox_url) as http:
        history = Cybersource(http).create("T-1", sendImmediately=True).json()["invoiceHistory"]
        (_, body), *_ = webhooks.wait_for(1)
    sent_at = datetime.fromisoformat(history[0]["date"])
    event_date = datetime.fromisoformat(body["eventDate"])
    expected = {EventDateOrder.BEFORE: event_date < sent_at,
                EventDateOrder.EQUAL: event_date == sent_at,
                EventDateOrder.AFTER: event_date > sent_at}[order]  # fmt: skip
    assert expected, (order, event_date, sent_at)


def test_review_entries_may_carry_the_transaction(receiver: tuple[Receiver, str]) -> None:
    options = SandboxOptions(transaction_details_on_review=True)
    with sandbox(options=options) as sandbox_url, httpx.Client(base_url=sandbox_url) as http:
        Cybersource(http).create("P-1", sendImmediately=True)
        http.post("/sandbox/invoices/P-1/pending", json={"amount": "247.86", "transactionId": "t1"})
        details = http.post("/sandbox/invoices/P-1/reject").json()
    rejected, pending = details["invoiceHistory"][:2]
    assert (rejected["event"], pending["event"]) == ("REJECTED", "PENDING")
    assert rejected["transactionDetails"] == {"transactionId": "t1", "amount": 247.86}
    assert Decimal(str(pending["transactionDetails"]["amount"])) == Decimal("247.86")


def test_payment_webhooks_carry_the_amount_only_when_asked(receiver: tuple[Receiver, str]) -> None:
    webhooks, url = receiver
    with (
        sandbox(url, include_payment_amount=True) as sandbox_url,
        httpx.Client(base_url=sandbox_url) as http,
    ):
        Cybersource(http).create("A-1", sendImmediately=True)
        http.post("/sandbox/invoices/A-1/pay", json={"amount": "247.86"}).raise_for_status()
        received = webhooks.wait_for(2)
    data = {body["eventType"]: body["payloads"][0]["data"] for _, body in received}
    assert data["invoicing.customer.invoice.paid"]["paymentAmount"] == "247.86"
    assert "paymentAmount" not in data["invoicing.customer.invoice.send"]


def test_the_transaction_details_api_answers_for_the_invoices_payments(
    cybersource: Cybersource,
) -> None:
    cybersource.create("X-1", sendImmediately=True, allowPartialPayments=True)
    paid = cybersource.http.post(
        "/sandbox/invoices/X-1/pay", json={"amount": "47.86", "transactionId": "7000000000001"}
    ).json()
    answer = cybersource.call("GET", "/tss/v2/transactions/7000000000001")
    assert answer.status_code == 200
    document = answer.json()
    assert (document["id"], document["rootId"], document["merchantId"]) == (
        "7000000000001", "7000000000001", "org-a"
    )  # fmt: skip
    assert document["_links"]["self"] == {
        "href": "/tss/v2/transactions/7000000000001", "method": "GET"
    }  # fmt: skip
    # Amounts are strings with the currency's decimals, as the SDK's model types them.
    assert document["orderInformation"]["amountDetails"] == {
        "totalAmount": "47.86", "authorizedAmount": "47.86", "currency": "USD"
    }  # fmt: skip
    assert document["status"] == "TRANSMITTED" and document["reconciliationId"].isdigit()
    application = document["applicationInformation"]
    assert (application["reasonCode"], application["rCode"], application["rFlag"]) == (
        "100", "1", "SOK"
    )  # fmt: skip
    assert {"name": "ics_bill", "reasonCode": "100", "rCode": "1", "rFlag": "SOK"} in (
        application["applications"]
    )
    # Submitted when the customer paid, to the second, as the documented format writes it.
    payment = paid["invoiceHistory"][0]
    assert payment["event"] == "PAYMENT"
    submitted = datetime.fromisoformat(document["submitTimeUTC"])
    assert document["submitTimeUTC"].endswith("Z") and len(document["submitTimeUTC"]) == 20
    assert submitted == datetime.fromisoformat(payment["date"]).replace(microsecond=0)


def test_transaction_details_are_signed_and_another_organizations_are_not_found(
    cybersource: Cybersource,
) -> None:
    cybersource.create("X-2", sendImmediately=True)
    cybersource.http.post(
        "/sandbox/invoices/X-2/pay", json={"amount": "247.86", "transactionId": "tx-a"}
    ).raise_for_status()
    unsigned = cybersource.http.get("/tss/v2/transactions/tx-a")
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "AUTHENTICATION_FAILED")
    for asker, transaction in ((Cybersource(cybersource.http, "org-b"), "tx-a"),
                               (cybersource, "tx-unknown")):  # fmt: skip
        missing = asker.call("GET", f"/tss/v2/transactions/{transaction}")
        assert missing.status_code == 404
        body = missing.json()
        assert set(body) == {"submitTimeUtc", "status", "reason", "message", "details"}
        assert (body["status"], body["reason"]) == ("NOTFOUND", "NOTFOUND")


def test_payment_entries_show_their_transaction_as_configured() -> None:
    options = SandboxOptions(
        payment_transaction_details=TransactionDetailsShown.TRANSACTION_ID,
        payment_transaction_details_by_organization={"org-b": TransactionDetailsShown.NONE},
    )
    with sandbox(options=options) as sandbox_url, httpx.Client(base_url=sandbox_url) as http:
        org_a, org_b = Cybersource(http), Cybersource(http, "org-b")
        for organization in (org_a, org_b):
            organization.create("N-1", sendImmediately=True, allowPartialPayments=True)

        def pay(organization_id: str, transaction_id: str, **extra: str) -> dict[str, Any]:
            paid = http.post(
                f"/sandbox/invoices/N-1/pay?organizationId={organization_id}",
                json={"amount": "40.00", "transactionId": transaction_id, **extra},
            )
            assert paid.status_code == 200, paid.text
            entry: dict[str, Any] = paid.json()["invoiceHistory"][0]
            assert entry["event"] == "PAYMENT"
            return entry

        assert pay("org-a", "t-1")["transactionDetails"] == {"transactionId": "t-1"}
        assert "transactionDetails" not in pay("org-b", "t-2")
        chosen = pay("org-a", "t-3", transactionDetails="amount")["transactionDetails"]
        assert chosen == {"transactionId": "t-3", "amount": 40}
        assert "transactionDetails" not in pay("org-a", "t-4", transactionDetails="none")
        refused = http.post(
            "/sandbox/invoices/N-1/pay", json={"amount": "1.00", "transactionDetails": "some"}
        )
        assert refused.status_code == 400
        assert refused.json()["details"] == [
            {"field": "transactionDetails", "reason": "INVALID_DATA"}
        ]
        # An answer shows each entry as it was paid; the transactions keep their amounts.
        history = org_a.call("GET", "/invoicing/v2/invoices/N-1").json()["invoiceHistory"]
        shown = [entry.get("transactionDetails") for entry in history[:3]]
        assert shown == [None, {"transactionId": "t-3", "amount": 40}, {"transactionId": "t-1"}]
        for transaction in ("t-1", "t-3", "t-4"):
            answer = org_a.call("GET", f"/tss/v2/transactions/{transaction}").json()
            assert answer["orderInformation"]["amountDetails"]["totalAmount"] == "40.00"


def test_a_payment_rejected_in_review_sends_the_invoice_back_to_sent_after_a_partial_one(
    cybersource: Cybersource,
) -> None:
    cybersource.create("V-1", sendImmediately=True, allowPartialPayments=True)
    http = cybersource.http
    http.post("/sandbox/invoices/V-1/pay", json={"amount": "47.86", "transactionId": "v-1"})
    held = http.post(
        "/sandbox/invoices/V-1/pending", json={"amount": "200.00", "transactionId": "v-2"}
    ).json()
    assert held["status"] == "PENDING"
    in_review = cybersource.call("GET", "/tss/v2/transactions/v-2").json()
    assert in_review["applicationInformation"]["reasonCode"] == "480"
    http.post("/sandbox/invoices/V-1/reject").raise_for_status()
    details = cybersource.call("GET", "/invoicing/v2/invoices/V-1").json()
    assert details["status"] == "SENT"
    assert details["orderInformation"]["amountDetails"]["balanceAmount"] == 200
    events = [entry["event"] for entry in details["invoiceHistory"]]
    assert events == ["REJECTED", "PENDING", "PAYMENT", "SEND", "DRAFT"]
    rejected = cybersource.call("GET", "/tss/v2/transactions/v-2").json()
    assert rejected["applicationInformation"]["reasonCode"] == "481"
    assert rejected["status"] == "AUTHORIZED_RISK_DECLINED"
