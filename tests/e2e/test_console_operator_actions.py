"""What an operator does and sees from the console, over a real socket on both engines:
several dead letters replayed in one action, each with what happened to it; where each of an
invoice's payments came from."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.console_pages import (
    OPERATOR,
    READER,
    console_client,
    deliver,
    deliver_raw,
    form_token,
    posted_from_console,
    projected,
)
from tests.support.cybersource_sandbox import (
    MERCHANT,
    cybersource_environment,
    drive,
    new_invoice,
)


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    with console_client(database_url) as client:
        yield client


def dead_letter(client: httpx.Client, notification_id: str) -> None:
    body = b'{"notificationId": "%s", "payloads": [{"data": {}}]}' % notification_id.encode()
    assert deliver_raw(client, body).status_code == 422


def test_ticked_dead_letters_are_replayed_in_one_action_each_with_its_result(
    console: httpx.Client,
) -> None:
    deliver(console, "INV-1")
    for name in ("n-dead-1", "n-dead-2"):
        dead_letter(console, name)
    assert console.post("/webhooks/cybersource", content=b"{}").status_code == 401  # unsigned
    queue = console.get("/console/deliveries", params={"waiting": "true"}, headers=OPERATOR)
    ticked = re.findall(r'type="checkbox" form="bulk-replay" name="deliveryId" value="([0-9]+)"',
                        queue.text)  # fmt: skip
    assert len(ticked) == 2
    everything = console.get("/v1/deliveries", headers=OPERATOR).json()["items"]
    [unsigned] = [item["deliveryId"] for item in everything if item["keyId"] is None]

    answer = console.post(
        "/console/deliveries/replay",
        data={
            "formToken": form_token(queue.text),
            "deliveryId": [*ticked, str(unsigned), "999999"],
        },
        headers=posted_from_console(console),
    )
    assert answer.status_code == 200, answer.text
    results = dict(
        re.findall(r'<tr data-delivery-id="([0-9]+)" data-result="([a-z_]+)"', answer.text)
    )
    assert results == {
        ticked[0]: "unreadable", ticked[1]: "unreadable",
        str(unsigned): "not_replayable", "999999": "unknown",
    }  # fmt: skip
    for delivery_id in ticked:
        replays = console.get(f"/v1/deliveries/{delivery_id}", headers=OPERATOR).json()["replays"]
        assert [replay["result"] for replay in replays] == ["unreadable"]


def test_a_bulk_replay_needs_an_operator_the_console_s_form_and_a_readable_selection(
    console: httpx.Client,
) -> None:
    dead_letter(console, "n-dead-3")
    queue = console.get("/console/deliveries", params={"waiting": "true"}, headers=OPERATOR)
    token = form_token(queue.text)
    [delivery_id] = re.findall(r'name="deliveryId" value="([0-9]+)"', queue.text)
    reader_page = console.get("/console/deliveries", params={"waiting": "true"}, headers=READER)
    assert 'form="bulk-replay"' not in reader_page.text
    origin = posted_from_console(console)["Origin"]

    as_reader = console.post(
        "/console/deliveries/replay",
        data={"formToken": token, "deliveryId": delivery_id},
        headers={**READER, "Origin": origin},
    )
    assert as_reader.status_code == 403
    forged = console.post(
        "/console/deliveries/replay",
        data={"formToken": "0" * 64, "deliveryId": delivery_id},
        headers=posted_from_console(console),
    )
    assert forged.status_code == 403
    for selection in ([], ["x1"], ["0"]):
        refused = console.post(
            "/console/deliveries/replay",
            data={"formToken": token, "deliveryId": selection},
            headers=posted_from_console(console),
        )
        assert refused.status_code == 400 and "deliveryId:" in refused.text
    replays = console.get(f"/v1/deliveries/{delivery_id}", headers=OPERATOR).json()["replays"]
    assert replays == []


def payment_sources(page: str) -> list[list[str]]:
    cells = re.findall(r'<td data-field="payment-source">(.*?)</td>', page, re.DOTALL)
    return [re.findall(r'data-source="([a-z]+)"', cell) for cell in cells]


def test_a_payment_from_a_webhook_says_so_on_the_invoice_page(console: httpx.Client) -> None:
    deliver(console, "INV-PAY", balance="100.00", event_date="2023-05-25T10:00:00Z")
    deliver(
        console, "INV-PAY", event_type="invoicing.customer.invoice.partial-payment",
        notification_id="n-pay-2", balance="60.00", event_date="2023-05-26T10:00:00Z",
    )  # fmt: skip
    projected(console, 2)
    page = console.get("/console/invoices", params={"invoiceNumber": "INV-PAY"}, headers=OPERATOR)
    assert page.status_code == 200, page.text
    assert payment_sources(page.text) == [["webhook"]]
    assert "webhook notification" in page.text


def test_a_payment_cybersource_s_history_states_is_the_reconciler_s(
    database_url: str, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "REC-PAY", "80.00", allowPartialPayments=True)
    drive(sandbox_url, "/invoices/REC-PAY/send")
    drive(sandbox_url, "/invoices/REC-PAY/pay", {"amount": "30.00", "transactionId": "tx-30"})
    environment = {
        name.removeprefix("LEDGER_").lower(): value
        for name, value in cybersource_environment(sandbox_url).items()
    }
    with console_client(database_url, **environment) as client:
        shown = {"invoiceNumber": "REC-PAY", "organizationId": MERCHANT.merchant_id}
        page = client.get("/console/invoices", params=shown, headers=OPERATOR)
        answer = client.post(
            "/console/invoices/reconcile",
            data={"formToken": form_token(page.text), **shown},
            headers=posted_from_console(client),
            follow_redirects=True,
        )
        assert answer.status_code == 200, answer.text
        trail = client.get("/v1/invoices/REC-PAY/events", headers=OPERATOR).json()["items"]
        projected(client, max(event["position"] for event in trail))
        page = client.get("/console/invoices", params=shown, headers=OPERATOR)
        assert payment_sources(page.text) == [["reconciler"]]
        assert "Cybersource history (reconciler)" in page.text
