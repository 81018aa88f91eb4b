from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from service.domain.events import EventSource, InvoiceEventType, NewEvent

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def invoice_event(
    stream_id: str = "INV-1",
    key: str = "key-1",
    *,
    type: str = InvoiceEventType.INVOICE_SENT,
    seconds: int = 0,
    **data: Any,
) -> NewEvent:
    return NewEvent(
        stream_id=stream_id,
        type=type,
        occurred_at=BASE_TIME + timedelta(seconds=seconds),
        source=EventSource.WEBHOOK,
        idempotency_key=key,
        data={"invoiceNumber": stream_id, "balanceAmount": "10.00", **data},
    )
