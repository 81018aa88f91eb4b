from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.cybersource.envelope import DeliveryHeaders, UnusableBody, parse_body
from service.domain.events import EventSource, InvoiceEventType
from service.ingest.notification import (
    EnvelopeContradictsPayload,
    SignatureScope,
    read_notification,
)
from service.ingest.translation import UnmodelledEventType, notification_events

SIGNED_AT = datetime(2023, 5, 26, 0, 49, 43, tzinfo=UTC)
NO_HEADERS = DeliveryHeaders()


def events_of(body: dict[str, Any] | bytes, headers: DeliveryHeaders = NO_HEADERS) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return notification_events(read_notification(parse_body(raw), headers), SIGNED_AT)


def documented_invoicing_example() -> dict[str, Any]:
    return {
        "notificationId": "fc8f1cae-0001",
        "retryNumber": 0,
        "eventType": "invoicing.customer.invoice.send",
        "eventDate": "2023-05-25T17:49:40.309-07:00",
        "webhookId": "fc8a9385-0001",
        "payloads": [
            {
                "data": {
                    "invoiceNumber": "20220389",
                    "invoiceBalance": "102.00",
                    "balanceAmount": "102.00",
                    "currency": "ALL",
                    "dueDate": "2023-05-25",
                    "payerName": "Tanya Lee",
                    "emailTo": "tanya@example.com",
                    "eventType": "invoicing.customer.invoice.send",
                    "organizationID": "invoicetest",
                    "subject": "Your invoice",
                }
            }
        ],
    }


def test_the_documented_invoicing_example_becomes_an_invoice_sent_event() -> None:
    [event] = events_of(documented_invoicing_example())
    assert event.stream_id == "20220389"
    assert event.type == InvoiceEventType.INVOICE_SENT
    assert event.source is EventSource.WEBHOOK
    assert event.occurred_at == datetime(2023, 5, 26, 0, 49, 40, 309000, tzinfo=UTC)
    assert event.idempotency_key == "cybersource:notification:fc8f1cae-0001"
    assert event.data["balanceAmount"] == "102.00"
    assert event.data["currency"] == "ALL"
    assert event.data["dueDate"] == "2023-05-25"
    assert event.data["customer"] == {"name": "Tanya Lee", "email": "tanya@example.com"}
    assert event.data["notification"]["organizationId"] == "invoicetest"


@pytest.mark.parametrize(
    ("notification_type", "event_type"),
    [
        ("invoicing.customer.invoice.send", InvoiceEventType.INVOICE_SENT),
        ("invoicing.customer.invoice.cancel", InvoiceEventType.INVOICE_CANCELED),
        ("invoicing.customer.invoice.paid", InvoiceEventType.INVOICE_PAID),
        ("invoicing.customer.invoice.partial-payment", InvoiceEventType.INVOICE_PARTIALLY_PAID),
        ("invoicing.customer.invoice.reminder", InvoiceEventType.INVOICE_REMINDER_SENT),
        (
            "invoicing.customer.invoice.overdue-reminder",
            InvoiceEventType.INVOICE_OVERDUE_REMINDER_SENT,
        ),
        ("invoicing.customer.invoice.partial-resend", InvoiceEventType.INVOICE_PARTIAL_RESENT),
    ],
)
def test_each_invoicing_type_maps_to_a_past_tense_event(
    notification_type: str, event_type: InvoiceEventType
) -> None:
    body = documented_invoicing_example()
    body["eventType"] = notification_type
    [event] = events_of(body)
    assert event.type == event_type
    assert event.data["notification"]["eventType"] == notification_type


def test_payload_singular_with_organization_id_beside_data_is_understood() -> None:
    body = documented_invoicing_example()
    item = body.pop("payloads")[0]
    del item["data"]["organizationID"]
    body["payload"] = [{"data": item["data"], "organizationId": "tms-org"}]
    [event] = events_of(body)
    assert event.stream_id == "20220389"
    assert event.data["notification"]["organizationId"] == "tms-org"


def test_payloads_as_an_object_rather_than_a_list_is_understood() -> None:
    body = documented_invoicing_example()
    body["payloads"] = body["payloads"][0]
    [event] = events_of(body)
    assert event.stream_id == "20220389"


def test_a_payload_item_without_a_data_wrapper_is_understood() -> None:
    body = documented_invoicing_example()
    body["payloads"] = [body["payloads"][0]["data"]]
    [event] = events_of(body)
    assert event.stream_id == "20220389"


@pytest.mark.parametrize("retry_number", [2, "2", " 2 "])
def test_retry_number_may_be_a_string_or_an_int(retry_number: object) -> None:
    body = documented_invoicing_example()
    body["retryNumber"] = retry_number
    notification = read_notification(body, NO_HEADERS)
    assert notification.retry_number == 2


def test_top_level_organization_id_in_either_spelling() -> None:
    for spelling in ("organizationId", "organizationID"):
        body = documented_invoicing_example()
        del body["payloads"][0]["data"]["organizationID"]
        body[spelling] = "org-top"
        assert read_notification(body, NO_HEADERS).organization_id == "org-top"


def test_missing_identifiers_fall_back_to_the_v_c_headers() -> None:
    body = documented_invoicing_example()
    for name in ("webhookId", "retryNumber"):
        del body[name]
    headers = DeliveryHeaders.from_mapping(
        {
            "v-c-webhook-id": "wh-from-header",
            "v-c-retry-count": "1",
            "v-c-transaction-trace-id": "trace-1",
        }
    )
    notification = read_notification(body, headers)
    assert notification.webhook_id == "wh-from-header"
    assert notification.retry_number == 1


def test_an_unsigned_header_never_supplies_the_event_type_only_a_missing_organization() -> None:
    body = documented_invoicing_example()
    del body["eventType"]
    del body["payloads"][0]["data"]["eventType"]
    del body["payloads"][0]["data"]["organizationID"]
    headers = DeliveryHeaders.from_mapping(
        {
            "v-c-event-type": "invoicing.customer.invoice.paid",
            "v-c-organization-id": "another-merchant",
        }
    )
    with pytest.raises(UnusableBody, match="names no eventType"):
        read_notification(body, headers)
    body["eventType"] = "invoicing.customer.invoice.send"
    notification = read_notification(body, headers)
    assert notification.organization_id == "another-merchant"
    assert notification.organization_from_header


def test_without_a_notification_id_the_key_is_webhook_type_organization_invoice_and_date() -> None:
    body = documented_invoicing_example()
    del body["notificationId"]
    [event] = events_of(body)
    assert event.idempotency_key == (
        "cybersource:notification:fc8a9385-0001|invoicing.customer.invoice.send|invoicetest"
        "|20220389|2023-05-25T17:49:40.309-07:00"
    )


def test_without_notification_id_or_event_date_different_notifications_get_different_keys() -> None:
    first, second = documented_invoicing_example(), documented_invoicing_example()
    for body in (first, second):
        del body["notificationId"], body["eventDate"]
    second["payloads"][0]["data"]["balanceAmount"] = "50.00"
    [a], [b] = events_of(first), events_of(second)
    assert a.idempotency_key != b.idempotency_key
    assert events_of(first)[0].idempotency_key == a.idempotency_key  # a retry shares it
    # Its time is the delivery's signature time: a retry signed later is the same content.
    assert not a.time_is_content


def test_retries_of_one_notification_produce_the_same_fact() -> None:
    first = documented_invoicing_example()
    retry = documented_invoicing_example()
    retry["retryNumber"] = 3
    retry["transactionTraceId"] = "another-attempt"
    [a], [b] = events_of(first), events_of(retry)
    assert (a.idempotency_key, a.data) == (b.idempotency_key, b.data)


@pytest.mark.parametrize(
    ("balance_json", "recorded"), [('"102.10"', "102.10"), ("102.10", "102.10"), ("102.1", "102.1")]
)
def test_amounts_as_strings_or_numbers_are_recorded_exactly(
    balance_json: str, recorded: str
) -> None:
    raw = json.dumps(documented_invoicing_example()).replace(
        '"balanceAmount": "102.00"', f'"balanceAmount": {balance_json}'
    )
    [event] = events_of(raw.encode())
    assert event.data["balanceAmount"] == recorded


def test_the_test_webhook_is_an_unmodelled_event_type() -> None:
    test_webhook = {
        "eventDate": "2024-05-08T16:15:23",
        "eventType": "tms.networktoken.updated",
        "organizationId": "org",
        "payloads": {"testPayload": {"message": "Yay! Your webhook integration worked!"}},
        "productId": "tokenManagement",
        "requestType": "NEW",
        "retryNumber": "0",
        "transactionTraceId": "ddd8883c",
        "webhookId": "17915c64",
    }
    notification = read_notification(test_webhook, NO_HEADERS)
    assert notification.event_date == datetime(2024, 5, 8, 16, 15, 23, tzinfo=UTC)
    with pytest.raises(UnmodelledEventType):
        notification_events(notification, SIGNED_AT)


def test_without_an_event_date_the_signature_time_is_the_provider_time() -> None:
    body = documented_invoicing_example()
    del body["eventDate"]
    [event] = events_of(body)
    assert event.occurred_at == SIGNED_AT


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b["payloads"][0]["data"].pop("invoiceNumber"), "invoiceNumber"),
        (lambda b: b["payloads"][0]["data"].update(invoiceNumber="  "), "invoiceNumber"),
        (lambda b: b["payloads"][0]["data"].update(balanceAmount="12,00"), "balanceAmount"),
        (lambda b: b["payloads"][0]["data"].update(balanceAmount="-1"), "balanceAmount"),
        (lambda b: b["payloads"][0]["data"].update(currency="dollars"), "currency"),
        (lambda b: b["payloads"][0]["data"].update(dueDate="tomorrow"), "dueDate"),
        # Not read as a Unix time, nor a timestamp as its day.
        (lambda b: b["payloads"][0]["data"].update(dueDate=1685000000), "dueDate"),
        (lambda b: b["payloads"][0]["data"].update(dueDate="2023-05-25T00:00:00Z"), "dueDate"),
        (lambda b: b.update(eventDate="yesterday"), "eventDate"),
        (lambda b: b.pop("payloads"), "no payload"),
        (lambda b: b.update(payloads=["not an object"]), "not an object"),
    ],
)
def test_unusable_bodies_are_refused_naming_what_is_wrong(mutate: Any, message: str) -> None:
    body = documented_invoicing_example()
    mutate(body)
    with pytest.raises(UnusableBody, match=message):
        events_of(body)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"{", b'{"a": NaN}'])
def test_bodies_that_are_not_a_json_object_are_unusable(raw: bytes) -> None:
    with pytest.raises(UnusableBody):
        read_notification(parse_body(raw), NO_HEADERS)


def test_a_long_fallback_key_is_digested_to_fit_the_store() -> None:
    body = documented_invoicing_example()
    del body["notificationId"]
    body["webhookId"] = "w" * 200
    body["payloads"][0]["data"]["invoiceNumber"] = "9" * 200
    [event] = events_of(body)
    assert len(event.idempotency_key) <= 300
    assert event.idempotency_key.startswith("cybersource:notification:sha256:")
    assert events_of(body)[0].idempotency_key == event.idempotency_key


def test_text_with_a_nul_character_is_unusable() -> None:
    body = documented_invoicing_example()
    body["payloads"][0]["data"]["payerName"] = "Tanya\x00Lee"
    with pytest.raises(UnusableBody, match="NUL"):
        events_of(body)


@pytest.mark.parametrize("retry_number", [-1, 10**30, "many", True])
def test_an_absurd_retry_number_is_dropped_rather_than_fatal(retry_number: object) -> None:
    body = documented_invoicing_example()
    body["retryNumber"] = retry_number
    assert read_notification(body, NO_HEADERS).retry_number is None


def test_blank_optional_fields_are_unknown_not_errors() -> None:
    body = documented_invoicing_example()
    body["payloads"][0]["data"].update(payerName="", emailTo="  ", dueDate="")
    [event] = events_of(body)
    assert event.data["customer"] is None
    assert event.data["dueDate"] is None


PAYLOAD_ONLY = SignatureScope(envelope_signed=False, signed_at=SIGNED_AT, payload_digest="d" * 64)


def test_with_only_the_payload_signed_type_and_organization_come_from_the_payload() -> None:
    body = documented_invoicing_example()
    del body["eventType"]
    notification = read_notification(body, NO_HEADERS, PAYLOAD_ONLY)
    assert notification.event_type == "invoicing.customer.invoice.send"
    assert notification.organization_id == "invoicetest"
    assert notification.envelope_signed is False


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(eventType="invoicing.customer.invoice.paid"),
        lambda b: b.update(organizationId="another-merchant"),
    ],
)
def test_an_unsigned_envelope_contradicting_its_signed_payload_is_refused(mutate: Any) -> None:
    body = documented_invoicing_example()
    mutate(body)
    with pytest.raises(EnvelopeContradictsPayload):
        read_notification(body, NO_HEADERS, PAYLOAD_ONLY)
    assert read_notification(body, NO_HEADERS).event_type  # signed whole, it is the sender's


def test_a_signed_payload_naming_no_event_type_is_unusable_whatever_the_envelope_says() -> None:
    body = documented_invoicing_example()
    del body["payloads"][0]["data"]["eventType"]
    with pytest.raises(UnusableBody, match="names no eventType"):
        read_notification(body, NO_HEADERS, PAYLOAD_ONLY)


def test_an_unsigned_notification_id_does_not_name_the_notification() -> None:
    first, replay = documented_invoicing_example(), documented_invoicing_example()
    replay["notificationId"] = "a-fresh-id-chosen-by-someone-else"
    a = read_notification(first, NO_HEADERS, PAYLOAD_ONLY)
    b = read_notification(replay, NO_HEADERS, PAYLOAD_ONLY)
    assert a.notification_id == b.notification_id == "payload-sha256:" + "d" * 64
    assert b.claimed_notification_id == "a-fresh-id-chosen-by-someone-else"
    [event_a], [event_b] = notification_events(a, SIGNED_AT), notification_events(b, SIGNED_AT)
    assert event_a.idempotency_key == event_b.idempotency_key


def test_an_unsigned_event_date_after_the_signature_is_clamped_to_the_signature_time() -> None:
    body = documented_invoicing_example()
    body["eventDate"] = "2030-01-01T00:00:00Z"
    assert read_notification(body, NO_HEADERS, PAYLOAD_ONLY).event_date == SIGNED_AT
    earlier = documented_invoicing_example()
    assert read_notification(earlier, NO_HEADERS, PAYLOAD_ONLY).event_date < SIGNED_AT


@pytest.mark.parametrize(
    "event_date", ["9999-12-31T23:00:00-02:00", "0001-01-01T00:30:00+01:00", "2023-13-01T00:00Z"]
)
def test_an_event_date_beyond_the_calendar_is_unusable_not_a_crash(event_date: str) -> None:
    body = documented_invoicing_example()
    body["eventDate"] = event_date
    with pytest.raises(UnusableBody, match="eventDate"):
        read_notification(body, NO_HEADERS)


@pytest.mark.parametrize("event_type", ["invoicing\x00paid", "invoicing\ud800"])
def test_an_unstorable_payload_event_type_is_unusable(event_type: str) -> None:
    body = documented_invoicing_example()
    del body["eventType"]
    body["payloads"][0]["data"]["eventType"] = event_type
    with pytest.raises(UnusableBody, match="eventType"):
        read_notification(body, NO_HEADERS)


def test_a_lone_surrogate_in_a_recorded_field_is_unusable() -> None:
    body = documented_invoicing_example()
    body["payloads"][0]["data"]["payerName"] = "Tanya\ud800"
    with pytest.raises(UnusableBody, match="surrogate"):
        events_of(body)


@pytest.mark.parametrize("retry_count", ["\u00b2", "\u0661", "\uff11"])
def test_unicode_digits_in_the_retry_count_are_dropped_not_a_crash(retry_count: str) -> None:
    assert DeliveryHeaders.from_mapping({"v-c-retry-count": retry_count}).retry_count is None
    body = documented_invoicing_example()
    body["retryNumber"] = retry_count
    assert read_notification(body, NO_HEADERS).retry_number is None


@pytest.mark.parametrize("amount", ['"\u0661\u0662"', '"\u00b2"', "1e999999999", '"1e3"'])
def test_an_amount_that_is_not_plain_ascii_decimal_is_unusable(amount: str) -> None:
    raw = json.dumps(documented_invoicing_example()).replace(
        '"balanceAmount": "102.00"', f'"balanceAmount": {amount}'
    )
    with pytest.raises(UnusableBody, match="balanceAmount"):
        events_of(raw.encode())


def test_an_unusable_body_is_described_without_its_values() -> None:
    body = documented_invoicing_example()
    body["payloads"][0]["data"].update(balanceAmount="Tanya Lee", currency="tanya@example")
    with pytest.raises(UnusableBody) as unusable:
        events_of(body)
    assert "Tanya" not in str(unusable.value) and "tanya" not in str(unusable.value)
