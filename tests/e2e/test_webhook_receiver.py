"""The served app, over a real socket, receiving deliveries signed as Cybersource signs them."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.app import create_app
from service.cybersource.webhook_signature import SignedContent
from service.settings import load_settings
from tests.support.asgi import post_in_process
from tests.support.ledger_store import read_ledger
from tests.support.webhooks import (
    MAX_BODY_BYTES,
    WEBHOOK_KEYS_SETTING,
    WEBHOOK_PATH,
    encode,
    invoice_notification,
    signed_headers,
)


def deliver(client: httpx.Client, body: bytes, **signing: object) -> httpx.Response:
    return client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, **signing))  # type: ignore[arg-type]


def ledger(database_url: str) -> tuple[list, list]:  # type: ignore[type-arg]
    return asyncio.run(read_ledger(database_url))


def test_a_signed_notification_is_accepted_once_and_then_is_a_duplicate(
    client: httpx.Client, database_url: str
) -> None:
    notification = invoice_notification("INV-100", notification_id="n-100")
    body = encode(notification)
    retry_body = encode({**notification, "retryNumber": 1})  # Cybersource's retry of it
    first = deliver(client, body)
    retry = deliver(client, retry_body, retry_count=1)
    assert (first.status_code, first.json()) == (200, {"status": "accepted"})
    assert (retry.status_code, retry.json()) == (200, {"status": "duplicate"})
    events, inbox = ledger(database_url)
    assert [(e.stream_id, e.type) for e in events] == [("INV-100", "InvoiceSent")]
    assert [row["outcome"] for row in inbox] == ["duplicate", "accepted"]
    assert [row["retry_count"] for row in inbox] == [1, 0]
    assert [bytes(row["body"]) for row in inbox] == [retry_body, body]


def test_a_payload_signed_notification_with_numeric_amounts_is_accepted_exactly(
    client: httpx.Client, database_url: str
) -> None:
    body = encode(invoice_notification("INV-101")).replace(
        b'"balanceAmount": "102.00"', b'"balanceAmount": 102.50'
    )
    response = deliver(client, body, signed_content=SignedContent.PAYLOAD)
    assert response.json() == {"status": "accepted"}
    events, inbox = ledger(database_url)
    assert events[0].data["balanceAmount"] == "102.50"
    assert inbox[0]["signed_content"] == "payload"


def test_the_same_notification_id_with_other_content_is_a_conflict_and_the_first_stays(
    client: httpx.Client, database_url: str
) -> None:
    original = encode(invoice_notification("INV-102", notification_id="n-102", balance="50.00"))
    altered = encode(invoice_notification("INV-102", notification_id="n-102", balance="0.00"))
    assert deliver(client, original).json() == {"status": "accepted"}
    assert deliver(client, altered).json() == {"status": "conflict"}
    events, inbox = ledger(database_url)
    assert [e.data["balanceAmount"] for e in events] == ["50.00"]
    assert inbox[0]["outcome"] == "conflict"
    assert bytes(inbox[0]["body"]) == altered
    metrics = client.get("/metrics").text
    assert 'ledger_webhook_deliveries_total{outcome="conflict"} 1.0' in metrics


def test_a_verified_notification_of_an_unmodelled_type_is_ignored_but_kept(
    client: httpx.Client, database_url: str
) -> None:
    body = encode(
        {
            "eventType": "tms.networktoken.updated",
            "payloads": {"testPayload": {"message": "Yay! Your webhook integration worked!"}},
            "retryNumber": "0",
            "webhookId": "17915c64",
        }
    )
    response = deliver(client, body, event_type="tms.networktoken.updated")
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    events, inbox = ledger(database_url)
    assert events == []
    assert (inbox[0]["outcome"], bytes(inbox[0]["body"])) == ("ignored", body)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_signature"),
        ({"v-c-signature": "t=1;keyId=x"}, "malformed_signature"),
        ({"V-C-SIGNATURE": "t={now};keyId=unknown;sig=AAAA"}, "unknown_key_id"),
        ({"v-c-signature": "t=1617830804768;keyId={key};sig=AAAA"}, "stale_timestamp"),
        ({"v-c-signature": "t={now};keyId={key};sig=AAAA"}, "bad_signature"),
    ],
)
def test_untrusted_deliveries_get_401_naming_why_and_store_no_body(
    client: httpx.Client, database_url: str, headers: dict[str, str], reason: str
) -> None:
    from tests.support.webhooks import WEBHOOK_KEY_ID

    now = str(int(time.time() * 1000))
    filled = {name: value.format(now=now, key=WEBHOOK_KEY_ID) for name, value in headers.items()}
    response = client.post(WEBHOOK_PATH, content=encode(invoice_notification()), headers=filled)
    assert response.status_code == 401
    assert response.json()["error"] == reason
    events, inbox = ledger(database_url)
    assert events == []
    assert [(row["outcome"], row["reason"], row["body"]) for row in inbox] == [
        ("rejected", reason, None)
    ]


def test_a_body_over_the_limit_gets_413_and_is_not_stored(
    client: httpx.Client, database_url: str
) -> None:
    body = encode(invoice_notification(subject="x" * MAX_BODY_BYTES))
    response = deliver(client, body)
    assert response.status_code == 413
    events, inbox = ledger(database_url)
    assert events == [] and inbox[0]["reason"] == "body_too_large"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"definitely not json", "not JSON"),
        (encode(invoice_notification(invoiceNumber=None)), "invoiceNumber"),
        (encode(invoice_notification(balance="ten")), "balanceAmount"),
        (encode(invoice_notification(payerName="Tanya\x00Lee")), "NUL"),
    ],
)
def test_a_signed_but_unusable_body_gets_422_and_is_kept_as_a_dead_letter(
    client: httpx.Client, database_url: str, body: bytes, problem: str
) -> None:
    response = deliver(client, body)
    assert response.status_code == 422
    assert response.json()["error"] == "unusable_body"
    assert problem in response.json()["detail"]
    events, inbox = ledger(database_url)
    assert events == []
    assert (inbox[0]["outcome"], bytes(inbox[0]["body"])) == ("rejected", body)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_health_check_methods_answer_200(client: httpx.Client, method: str) -> None:
    assert client.request(method, WEBHOOK_PATH).status_code == 200


@pytest.mark.anyio
async def test_concurrent_copies_of_a_delivery_record_one_event(
    base_url: str, database_url: str
) -> None:
    body = encode(invoice_notification("INV-200", notification_id="n-200"))
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
                for _ in range(12)
            )
        )
    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 11
    events, _ = await read_ledger(database_url)
    assert len(events) == 1


def test_readiness_reports_a_migrated_reachable_database(client: httpx.Client) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/healthz").status_code == 200


def test_an_envelope_contradicting_its_signed_payload_gets_401_envelope_mismatch(
    client: httpx.Client, database_url: str
) -> None:
    notification = invoice_notification("INV-300")
    notification["eventType"] = "invoicing.customer.invoice.paid"  # the payload says send
    response = deliver(client, encode(notification), signed_content=SignedContent.PAYLOAD)
    assert (response.status_code, response.json()["error"]) == (401, "envelope_mismatch")
    events, inbox = ledger(database_url)
    assert events == []
    assert [(row["outcome"], row["reason"], row["body"]) for row in inbox] == [
        ("rejected", "envelope_mismatch", None)
    ]


def test_a_signed_payload_without_an_event_type_is_kept_as_a_dead_letter_not_applied(
    client: httpx.Client, database_url: str
) -> None:
    notification = invoice_notification("INV-301")
    del notification["payloads"][0]["data"]["eventType"]
    body = encode(notification)
    response = deliver(client, body, signed_content=SignedContent.PAYLOAD)
    assert (response.status_code, response.json()["error"]) == (422, "unusable_body")
    events, inbox = ledger(database_url)
    assert events == []
    assert (inbox[0]["outcome"], bytes(inbox[0]["body"])) == ("rejected", body)


def test_a_signed_payload_replayed_under_a_new_notification_id_is_a_duplicate(
    client: httpx.Client, database_url: str
) -> None:
    """And with its unsigned date changed too it is a conflict: recorded, never a new fact."""
    original = invoice_notification("INV-302", notification_id="n-302")
    replays = [
        {**original, "notificationId": "n-302-replayed"},
        {**original, "notificationId": "n-302-again", "eventDate": "2023-05-26T00:00:00Z"},
    ]
    answers = [
        deliver(client, encode(body), signed_content=SignedContent.PAYLOAD).json()["status"]
        for body in [original, *replays]
    ]
    assert answers == ["accepted", "duplicate", "conflict"]
    events, inbox = ledger(database_url)
    assert len(events) == 1
    assert len({row["notification_id"] for row in inbox}) == 1


def test_an_unsigned_event_date_later_than_the_signature_is_clamped_to_it(
    client: httpx.Client, database_url: str
) -> None:
    signed_at_ms = int(time.time() * 1000)
    body = encode(invoice_notification("INV-303", event_date="2030-01-01T00:00:00Z"))
    response = deliver(
        client, body, signed_content=SignedContent.PAYLOAD, timestamp_ms=signed_at_ms
    )
    assert response.json() == {"status": "accepted"}
    events, _ = ledger(database_url)
    assert events[0].occurred_at.timestamp() == signed_at_ms / 1000


def test_a_raw_form_body_is_signed_whole_so_its_envelope_is_trusted(
    client: httpx.Client, database_url: str
) -> None:
    notification = invoice_notification("INV-304", notification_id="n-304")
    response = deliver(client, encode(notification))
    assert response.json() == {"status": "accepted"}
    events, _ = ledger(database_url)
    assert events[0].idempotency_key == "cybersource:notification:n-304"


@pytest.mark.parametrize("header", ["V-C-Retry-Count", "Content-Length"])
def test_unicode_digits_in_headers_never_cause_a_server_error(
    database_url: str, header: str
) -> None:
    """In-process: an HTTP server may refuse such a header before the application sees it."""
    app = create_app(load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING))
    body = encode(invoice_notification("INV-305"))
    headers = {**signed_headers(body), header: "\u00b2"}

    async def post_and_close() -> tuple[int, object]:
        try:
            return await post_in_process(app, WEBHOOK_PATH, body, headers)
        finally:
            await app.state.ledger.engine.dispose()

    assert asyncio.run(post_and_close()) == (200, {"status": "accepted"})


def _notification_of(invoices: int) -> bytes:
    notification = invoice_notification("BATCH-0", notification_id=f"batch-of-{invoices}")
    [item] = notification["payloads"]
    notification["payloads"] = [
        {"data": {**item["data"], "invoiceNumber": f"BATCH-{index}"}} for index in range(invoices)
    ]
    return encode(notification)


def test_a_delivery_of_more_invoices_than_the_bound_gets_422_and_is_kept_as_a_dead_letter(
    database_url: str,
) -> None:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, webhook_items_max=3
    )
    app = create_app(settings)

    async def deliver_both() -> list[tuple[int, object]]:
        try:
            return [
                await post_in_process(app, WEBHOOK_PATH, body, signed_headers(body))
                for body in (_notification_of(3), _notification_of(4))
            ]
        finally:
            await app.state.ledger.engine.dispose()

    within, beyond = asyncio.run(deliver_both())
    assert within == (200, {"status": "accepted"})
    assert beyond[0] == 422
    assert beyond[1] == {
        "error": "unusable_body", "detail": "the payload holds more than 3 items",
    }  # fmt: skip
    events, inbox = ledger(database_url)
    assert sorted(event.stream_id for event in events) == ["BATCH-0", "BATCH-1", "BATCH-2"]
    assert (inbox[0]["outcome"], bytes(inbox[0]["body"])) == ("rejected", _notification_of(4))
    assert inbox[0]["reason"].startswith("unusable_body: the payload holds more than 3 items")
