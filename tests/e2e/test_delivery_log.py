"""The delivery log, replays and corrections over a real socket, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.cybersource.webhook_signature import SignedContent
from tests.support.delivery_log import (
    BODY_MARKER,
    OPERATOR,
    READ,
    ledger,
    post_delivery,
    two_invoice_notification,
)
from tests.support.webhooks import (
    encode,
    invoice_notification,
    signed_headers,
)


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    with ledger(database_url) as client:
        yield client


def deliveries(api: httpx.Client, headers: dict[str, str] = OPERATOR, **params: Any) -> Any:
    response = api.get("/v1/deliveries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def show(api: httpx.Client, delivery_id: int, headers: dict[str, str] = OPERATOR) -> Any:
    response = api.get(f"/v1/deliveries/{delivery_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def replay(api: httpx.Client, delivery_id: int) -> Any:
    response = api.post(f"/v1/deliveries/{delivery_id}/replay", headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()


def only_delivery(api: httpx.Client) -> Any:
    [delivery] = deliveries(api)["items"]
    return delivery


def test_a_dead_letter_replayed_after_the_reader_changed_is_appended_once_then_is_a_duplicate(
    database_url: str,
) -> None:
    body = two_invoice_notification("n-two-items")
    with ledger(database_url, webhook_items_max=1) as strict:
        refused = post_delivery(strict, body, **{"V-C-Organization-Id": "org-from-header"})
        assert refused.status_code == 422
        dead_letter = only_delivery(strict)
        assert dead_letter["outcome"] == "rejected"
        assert dead_letter["reason"].startswith("unusable_body: the payload holds more than 1")
        assert dead_letter["replayable"] is True
        still = replay(strict, dead_letter["deliveryId"])
        assert (still["result"], still["positions"]) == ("unreadable", [])
        assert "more than 1 items" in still["reason"]

    with ledger(database_url, webhook_items_max=10) as relaxed:  # the reader has changed
        first = replay(relaxed, dead_letter["deliveryId"])
        assert first["result"] == "appended" and len(first["positions"]) == 2
        second = replay(relaxed, dead_letter["deliveryId"])
        assert second["result"] == "duplicate"
        assert second["positions"] == first["positions"]

        for number in ("INV-A", "INV-B"):
            trail = relaxed.get(f"/v1/invoices/{number}/events", headers=READ).json()
            [event] = trail["items"]
            assert event["source"] == "webhook"
            # Read with the header it arrived with, as on receipt.
            assert trail["organizationId"] == "org-from-header"

        history = show(relaxed, dead_letter["deliveryId"])
        assert history["outcome"] == "rejected"  # how it arrived is never rewritten
        assert [r["result"] for r in history["replays"]] == ["unreadable", "appended", "duplicate"]
        assert history["replays"][1]["replayedBy"].startswith("token:")
        assert history["lastReplay"]["result"] == "duplicate"
        assert sorted(history["positions"]) == sorted(first["positions"])


def test_replaying_a_delivery_already_recorded_is_a_duplicate(api: httpx.Client) -> None:
    body = encode(invoice_notification("INV-R", notification_id="n-recorded"))
    assert post_delivery(api, body).status_code == 200
    accepted = only_delivery(api)
    assert accepted["outcome"] == "accepted" and accepted["signedAt"] is not None
    answer = replay(api, accepted["deliveryId"])
    assert answer["result"] == "duplicate"
    assert answer["positions"] == [accepted["eventPosition"]]
    detail = show(api, accepted["deliveryId"])
    assert detail["positions"] == [accepted["eventPosition"]]
    assert detail["headers"]["v-c-event-type"] == "invoicing.customer.invoice.send"
    assert "v-c-transaction-trace-id" in detail["headers"]
    assert "v-c-signature" not in detail["headers"]
    trail = api.get("/v1/invoices/INV-R/events", headers=READ).json()
    assert len(trail["items"]) == 1


def test_bodies_reach_operator_tokens_only(api: httpx.Client) -> None:
    body = two_invoice_notification("n-marker")
    assert post_delivery(api, body).status_code == 200
    delivery_id = only_delivery(api)["deliveryId"]

    for path in ("/v1/deliveries", f"/v1/deliveries/{delivery_id}"):
        answer = api.get(path, headers=READ)
        assert answer.status_code == 200
        assert BODY_MARKER not in answer.text
    assert show(api, delivery_id, READ)["body"] is None
    assert show(api, delivery_id, READ)["bodyBytes"] == len(body)
    assert show(api, delivery_id, OPERATOR)["body"] == body.decode()


def test_a_read_token_may_not_replay_or_correct(api: httpx.Client) -> None:
    body = encode(invoice_notification("INV-S"))
    assert post_delivery(api, body).status_code == 200
    delivery_id = only_delivery(api)["deliveryId"]
    for action, payload in (("replay", None), ("corrections", {"reason": "right one"})):
        response = api.post(f"/v1/deliveries/{delivery_id}/{action}", headers=READ, json=payload)
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
    assert api.post(f"/v1/deliveries/{delivery_id}/replay").status_code == 401


def test_a_delivery_refused_for_its_signature_is_not_replayable_and_says_why(
    api: httpx.Client,
) -> None:
    body = encode(invoice_notification("INV-U"))
    headers = signed_headers(body, key=b"not-the-configured-key-0123456789")
    assert api.post("/webhooks/cybersource", content=body, headers=headers).status_code == 401
    refused = only_delivery(api)
    assert (refused["keyId"], refused["bodyBytes"], refused["replayable"]) == (None, None, False)
    response = api.post(f"/v1/deliveries/{refused['deliveryId']}/replay", headers=OPERATOR)
    assert response.status_code == 409
    assert response.json()["error"] == "unsigned"
    assert "bad_signature" in response.json()["detail"]
    missing = api.post("/v1/deliveries/999999/replay", headers=OPERATOR)
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_delivery")


def test_a_conflict_shows_both_versions_and_its_correction_is_a_new_operator_event(
    api: httpx.Client,
) -> None:
    first = invoice_notification("INV-C", notification_id="n-conflict", balance="100.00")
    second = invoice_notification("INV-C", notification_id="n-conflict", balance="80.00")
    assert post_delivery(api, encode(first)).status_code == 200
    assert post_delivery(api, encode(second)).status_code == 200
    conflict = deliveries(api, outcome="conflict")["items"][0]

    [versions] = show(api, conflict["deliveryId"], READ)["conflicts"]
    assert versions["recorded"]["data"]["balanceAmount"] == "100.00"
    assert versions["recorded"]["position"] == conflict["eventPosition"]
    assert versions["delivered"]["data"]["balanceAmount"] == "80.00"
    assert versions["delivered"]["position"] is None

    path = f"/v1/deliveries/{conflict['deliveryId']}/corrections"
    reason = {"reason": "Cybersource support confirmed the second notification"}
    corrected = api.post(path, headers=OPERATOR, json=reason)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["result"] == "appended"
    [position] = corrected.json()["positions"]
    again = api.post(path, headers=OPERATOR, json=reason).json()
    assert (again["result"], again["positions"]) == ("duplicate", [position])

    trail = api.get("/v1/invoices/INV-C/events", headers=READ).json()["items"]
    assert [event["source"] for event in trail] == ["webhook", "operator"]
    assert trail[1]["data"]["correction"]["reason"] == reason["reason"]
    assert trail[1]["data"]["correction"]["correctsPosition"] == conflict["eventPosition"]
    invoice = api.get("/v1/invoices/INV-C", params={"minPosition": position}, headers=READ).json()
    assert invoice["balanceAmount"] == "80.00"

    accepted = deliveries(api, outcome="accepted")["items"][0]
    not_conflict = api.post(
        f"/v1/deliveries/{accepted['deliveryId']}/corrections", headers=OPERATOR, json=reason
    )
    assert (not_conflict.status_code, not_conflict.json()["error"]) == (409, "not_a_conflict")
    no_reason = api.post(path, headers=OPERATOR, json={"reason": ""})
    assert (no_reason.status_code, no_reason.json()["error"]) == (400, "bad_body")
    for unstorable, error in ((r"a NUL \u0000", "bad_reason"), (r"a lone \ud800", "bad_body")):
        refused = api.post(
            path, headers={**OPERATOR, "Content-Type": "application/json"},
            content=f'{{"reason": "{unstorable}"}}'.encode(),
        )  # fmt: skip
        assert (refused.status_code, refused.json()["error"]) == (400, error)


def test_the_delivery_log_filters_and_pages_newest_first(api: httpx.Client) -> None:
    for index in range(5):
        document = invoice_notification(f"INV-{index}", notification_id=f"n-{index}")
        if index % 2:
            document["eventType"] = "invoicing.customer.invoice.paid"
            document["payloads"][0]["data"]["eventType"] = "invoicing.customer.invoice.paid"
        assert post_delivery(api, encode(document)).status_code == 200
    assert post_delivery(api, b"{not json").status_code == 422

    everything = deliveries(api)["items"]
    assert len(everything) == 6
    ids = [item["deliveryId"] for item in everything]
    assert ids == sorted(ids, reverse=True)

    pages, cursor = [], None
    while True:
        page = deliveries(api, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.extend(item["deliveryId"] for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == ids

    paid = deliveries(api, eventType="invoicing.customer.invoice.paid")["items"]
    assert sorted(item["notificationId"] for item in paid) == ["n-1", "n-3"]
    [one] = deliveries(api, notificationId="n-2")["items"]
    assert one["organizationId"] == "invoicetest"
    assert len(deliveries(api, organizationId="invoicetest")["items"]) == 5
    assert [i["reason"][:13] for i in deliveries(api, outcome="rejected")["items"]] == [
        "unusable_body"
    ]
    assert len(deliveries(api, reason="unusable_body")["items"]) == 1
    assert deliveries(api, reason="unusable_body_")["items"] == []  # "_" is no wildcard
    newest = everything[0]["receivedAt"]
    assert len(deliveries(api, receivedFrom=newest)["items"]) >= 1
    assert deliveries(api, receivedTo="2000-01-01T00:00:00Z")["items"] == []


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"outcome": "bogus"}, "outcome:"),
        ({"limit": "0"}, "limit:"),
        ({"limit": "501"}, "limit:"),
        ({"cursor": "not-a-cursor"}, "cursor: is not a cursor this API issued"),
        ({"receivedFrom": "1700000000"}, "receivedFrom: must be an ISO-8601 instant"),
        ({"receivedFrom": "2026-02-01T00:00:00Z", "receivedTo": "2026-01-01T00:00:00Z"},
         "receivedTo: must not be before receivedFrom"),
        ({"status": "PAID"}, "status: is not a parameter of this endpoint"),
    ],
)  # fmt: skip
def test_bad_delivery_log_parameters_are_refused_naming_the_parameter(
    api: httpx.Client, params: dict[str, str], detail: str
) -> None:
    response = api.get("/v1/deliveries", params=params, headers=READ)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_parameter"
    assert detail in response.json()["detail"]
    bad_id = api.get("/v1/deliveries/abc", headers=READ)
    assert (bad_id.status_code, bad_id.json()["error"]) == (400, "bad_parameter")


def test_a_replayed_payload_signed_dead_letter_is_the_fact_a_fresh_delivery_records(
    database_url: str,
) -> None:
    """Only the payload signed: the notification is named by its payload's digest, which the
    replay computes from the kept body as the receiver did from the request."""
    body = two_invoice_notification("n-payload-form")
    headers = signed_headers(body, signed_content=SignedContent.PAYLOAD)
    with ledger(database_url, webhook_items_max=1) as strict:
        response = strict.post("/webhooks/cybersource", content=body, headers=headers)
        assert response.status_code == 422
        dead_letter = only_delivery(strict)
        assert dead_letter["signedContent"] == "payload"
    with ledger(database_url, webhook_items_max=10) as relaxed:
        assert replay(relaxed, dead_letter["deliveryId"])["result"] == "appended"
        fresh = relaxed.post(
            "/webhooks/cybersource",
            content=body,
            headers=signed_headers(body, signed_content=SignedContent.PAYLOAD),
        )
        assert fresh.json() == {"status": "duplicate"}
        [event] = relaxed.get("/v1/invoices/INV-A/events", headers=READ).json()["items"]
        assert event["data"]["notification"]["id"].startswith("payload-sha256:")


def test_an_ignored_delivery_is_replayable_and_says_why_it_still_does_not_read(
    api: httpx.Client,
) -> None:
    document = invoice_notification("INV-T", event_type="invoicing.customer.invoice.test")
    assert post_delivery(api, encode(document)).json() == {"status": "ignored"}
    ignored = only_delivery(api)
    assert (ignored["outcome"], ignored["replayable"]) == ("ignored", True)
    answer = replay(api, ignored["deliveryId"])
    assert answer["result"] == "unreadable"
    assert answer["reason"] == "event type invoicing.customer.invoice.test"


def notice(number: str, notification_id: str, kind: str, balance: str, hour: int) -> Any:
    """A notification for ``number`` dated 2026-03-02 at ``hour``:00 UTC."""
    stated = {"totalAmount": "100.00"} if kind.endswith(".send") else {}
    return invoice_notification(
        number, kind, notification_id=notification_id, balance=balance,
        event_date=f"2026-03-02T{hour}:00:00.000Z", **stated,
    )  # fmt: skip


def correct_conflict(api: httpx.Client, notification_id: str) -> int:
    """Records the conflicting delivery of ``notification_id`` as a correction; its position."""
    conflict = next(
        item for item in deliveries(api, outcome="conflict")["items"]
        if item["notificationId"] == notification_id
    )  # fmt: skip
    answer = api.post(
        f"/v1/deliveries/{conflict['deliveryId']}/corrections",
        headers=OPERATOR,
        json={"reason": "Cybersource support confirmed the second version"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "appended"
    [position] = answer.json()["positions"]
    return int(position)


def invoice_at(api: httpx.Client, number: str, position: int) -> Any:
    answer = api.get(f"/v1/invoices/{number}", params={"minPosition": position}, headers=READ)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_correction_raising_a_balance_takes_effect_and_counts_the_right_money(
    api: httpx.Client,
) -> None:
    """100.00 sent; 30.00 paid; a second payment notified with balance 40.00, then the same
    notification again with 50.00 (a conflict); the operator records the second version."""
    partial = "invoicing.customer.invoice.partial-payment"
    sent = notice("INV-R", "r-send", "invoicing.customer.invoice.send", "100.00", 10)
    first = notice("INV-R", "r-p1", partial, "70.00", 11)
    second = notice("INV-R", "r-p2", partial, "40.00", 12)
    for document in (sent, first, second):
        assert post_delivery(api, encode(document)).status_code == 200
    assert invoice_at(api, "INV-R", 3)["balanceAmount"] == "40.00"
    second["payloads"][0]["data"]["balanceAmount"] = "50.00"
    second["payloads"][0]["data"]["invoiceBalance"] = "50.00"
    assert post_delivery(api, encode(second)).status_code == 200

    position = correct_conflict(api, "r-p2")
    invoice = invoice_at(api, "INV-R", position)
    assert (invoice["status"], invoice["balanceAmount"], invoice["paidAmount"]) == (
        "PARTIAL", "50.00", "50.00"
    )  # fmt: skip
    assert len(invoice["payments"]) == 2
    collections = api.get(
        "/v1/reports/collections",
        params={"from": "2026-03-02", "to": "2026-03-02", "minPosition": position},
        headers=READ,
    ).json()["items"]
    assert [(row["amount"], row["incomplete"]) for row in collections] == [("50.00", False)]
    trail = api.get("/v1/invoices/INV-R/events", headers=READ).json()["items"]
    marked = {event["position"]: event.get("correctedBy") for event in trail}
    assert marked == {1: None, 2: None, 3: position, position: None}


def test_a_wrong_paid_corrected_into_a_partial_payment_reopens_the_invoice(
    api: httpx.Client,
) -> None:
    sent = notice("INV-W", "w-send", "invoicing.customer.invoice.send", "100.00", 10)
    paid = notice("INV-W", "w-2", "invoicing.customer.invoice.paid", "0.00", 11)
    for document in (sent, paid):
        assert post_delivery(api, encode(document)).status_code == 200
    assert invoice_at(api, "INV-W", 2)["status"] == "PAID"
    partial = notice("INV-W", "w-2", "invoicing.customer.invoice.partial-payment", "60.00", 11)
    assert post_delivery(api, encode(partial)).status_code == 200

    position = correct_conflict(api, "w-2")
    invoice = invoice_at(api, "INV-W", position)
    assert (invoice["status"], invoice["balanceAmount"], invoice["paidAmount"]) == (
        "PARTIAL", "60.00", "40.00"
    )  # fmt: skip
    outstanding = api.get(
        "/v1/reports/outstanding", params={"minPosition": position}, headers=READ
    ).json()["items"]
    assert [(row["currency"], row["balanceAmount"]) for row in outstanding] == [("USD", "60.00")]


def test_the_deliveries_of_an_invoice_are_found_by_its_number(api: httpx.Client) -> None:
    first = encode(invoice_notification("INV-F", notification_id="n-f1"))
    again = encode(invoice_notification("INV-F", notification_id="n-f1"))
    other = encode(invoice_notification("INV-G", notification_id="n-g1"))
    for body in (first, again, other):
        assert post_delivery(api, body).status_code == 200
    found = deliveries(api, invoiceNumber="INV-F")["items"]
    assert sorted(item["outcome"] for item in found) == ["accepted", "duplicate"]
    assert deliveries(api, invoiceNumber="INV-NONE")["items"] == []
    assert (
        api.get("/v1/deliveries", params={"invoiceNumber": ""}, headers=OPERATOR).status_code == 400
    )
