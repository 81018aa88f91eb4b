"""Random but reproducible invoice histories, as webhook and reconciler facts."""

from __future__ import annotations

import random
from datetime import timedelta

from service.domain.events import InvoiceEventType, NewEvent
from tests.support.events import invoice_event

E = InvoiceEventType
TYPES = [
    E.INVOICE_SENT, E.INVOICE_PARTIALLY_PAID, E.INVOICE_PAID, E.INVOICE_CANCELED,
    E.INVOICE_REMINDER_SENT, E.PAYMENT_RECEIVED, E.INVOICE_PAYMENT_PENDING,
    E.INVOICE_PAYMENT_REJECTED, E.INVOICE_OVERDUE_REMINDER_SENT,
]  # fmt: skip


def random_history(
    seed: int, invoices: int = 12, events: int = 80, prefix: str = ""
) -> list[NewEvent]:
    """Facts about several invoices, in a shuffled delivery order."""
    rng = random.Random(seed)
    history = []
    for index in range(events):
        number = f"{prefix}INV-{rng.randrange(invoices)}"
        data: dict[str, object] = {"currency": rng.choice(["USD", "EUR"])}
        if rng.random() < 0.7:
            data["balanceAmount"] = f"{rng.randrange(0, 50_000) / 100:.2f}"
        if rng.random() < 0.3:
            data["totalAmount"] = "500.00"
        if rng.random() < 0.4:
            data["payment"] = {
                "transactionId": f"tx-{rng.randrange(6)}",
                "amount": f"{rng.randrange(1, 10_000) / 100:.2f}",
            }
        if rng.random() < 0.5:
            data["dueDate"] = f"2026-0{rng.randrange(1, 4)}-1{rng.randrange(0, 9)}"
        history.append(
            invoice_event(
                number,
                f"{seed}-{index}",
                type=rng.choice(TYPES),
                seconds=rng.randrange(0, 3600),
                **data,
            )
        )
    rng.shuffle(history)
    return history


def shifted(event: NewEvent, seconds: int) -> NewEvent:
    return NewEvent(
        stream_id=event.stream_id, type=event.type,
        occurred_at=event.occurred_at + timedelta(seconds=seconds), source=event.source,
        idempotency_key=event.idempotency_key, data=event.data,
    )  # fmt: skip
