"""A correction is a notification to the fold, recorded as a new fact beside the first."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from service.domain.events import EventSource, InvoiceEventType, RecordedEvent
from service.domain.invoice import fold
from service.domain.payloads import (
    CorrectionRecorded,
    NotificationIdentity,
    NotificationReceived,
    StatedFields,
    decode,
    encode,
)
from service.domain.status import InvoiceStatus

WHEN = datetime(2026, 3, 1, 10, tzinfo=UTC)


def notice(balance: str) -> NotificationReceived:
    return NotificationReceived(
        "org-1",
        "INV-9",
        StatedFields(
            currency="USD", total_amount=Decimal("100.00"), balance_amount=Decimal(balance)
        ),
        notification=NotificationIdentity(notification_id="n-9", event_type="send"),
    )


def recorded(position: int, data: dict[str, object], source: EventSource) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id="INV-9",
        version=position,
        type=InvoiceEventType.INVOICE_SENT,
        schema_version=2,
        occurred_at=WHEN,
        recorded_at=WHEN,
        source=source,
        idempotency_key=f"key-{position}",
        data=data,
    )


def correction(balance: str) -> CorrectionRecorded:
    first = notice(balance)
    return CorrectionRecorded(
        first.organization_id,
        first.invoice_number,
        first.stated,
        first.payment,
        first.notification,
        reason="the second version is right",
        delivery_id=7,
        corrects_position=1,
        recorded_by="token:abc",
    )


def test_a_correction_is_stored_and_read_back_with_its_reason_and_what_it_corrects() -> None:
    stored = encode(correction("80.00"))
    assert stored["correction"] == {
        "reason": "the second version is right",
        "deliveryId": 7,
        "correctsPosition": 1,
        "recordedBy": "token:abc",
    }
    assert stored["balanceAmount"] == "80.00"
    assert decode(recorded(2, stored, EventSource.OPERATOR)) == correction("80.00")
    assert type(decode(recorded(1, encode(notice("100.00")), EventSource.WEBHOOK))) is (
        NotificationReceived
    )


def test_a_correction_at_the_same_time_as_the_notification_it_corrects_is_the_one_in_force() -> (
    None
):
    first = recorded(1, encode(notice("100.00")), EventSource.WEBHOOK)
    second = recorded(2, encode(correction("80.00")), EventSource.OPERATOR)
    state = fold("INV-9", [first, second], "org-1")
    assert (state.status, state.balance_amount) == (InvoiceStatus.SENT, Decimal("80.00"))
    assert fold("INV-9", [first], "org-1").balance_amount == Decimal("100.00")
