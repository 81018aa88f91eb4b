from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.domain.events import EventSource, InvoiceEventType, RecordedEvent
from service.domain.invoice import InvoiceStatus, fold, fold_as_of, state_history

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
E = InvoiceEventType


def event(position: int, type: str, minutes: int, **data: Any) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id="INV-1",
        version=position,
        type=type,
        schema_version=1,
        occurred_at=T0 + timedelta(minutes=minutes),
        recorded_at=T0,
        source=EventSource.WEBHOOK,
        idempotency_key=f"k{position}",
        data={"invoiceNumber": "INV-1", **data},
    )


def lifecycle() -> list[RecordedEvent]:
    return [
        event(
            1,
            E.INVOICE_SENT,
            0,
            balanceAmount="100.00",
            totalAmount="100.00",
            currency="USD",
            dueDate="2026-03-31",
            customer={"name": "Tanya Lee", "email": "tanya@example.com"},
        ),
        event(
            2,
            E.INVOICE_PARTIALLY_PAID,
            10,
            balanceAmount="60.00",
            payment={"transactionId": "tx-1", "amount": "40.00"},
        ),
        event(
            3,
            E.INVOICE_PAID,
            20,
            balanceAmount="0.00",
            payment={"transactionId": "tx-2", "amount": "60.00"},
        ),
    ]


def test_send_partial_payment_then_paid_settles_the_invoice() -> None:
    state = fold("INV-1", lifecycle())
    assert state.status is InvoiceStatus.PAID
    assert (state.total_amount, state.balance_amount, state.paid_amount) == (
        Decimal("100.00"),
        Decimal("0.00"),
        Decimal("100.00"),
    )
    assert (state.currency, state.due_date) == ("USD", date(2026, 3, 31))
    assert (state.customer_name, state.customer_email) == ("Tanya Lee", "tanya@example.com")
    assert [p.transaction_id for p in state.payments] == ["tx-1", "tx-2"]
    assert [c.amount for c in state.collections] == [Decimal("40.00"), Decimal("60.00")]


@given(st.permutations(lifecycle()))
def test_every_delivery_order_folds_to_the_same_state(events: list[RecordedEvent]) -> None:
    assert fold("INV-1", events) == fold("INV-1", lifecycle())


def test_a_late_send_does_not_reopen_a_paid_invoice() -> None:
    events = [*lifecycle(), event(4, E.INVOICE_SENT, 30, balanceAmount="0.00")]
    assert fold("INV-1", events).status is InvoiceStatus.PAID


def test_a_send_does_not_reopen_a_canceled_invoice() -> None:
    events = [event(1, E.INVOICE_CANCELED, 0), event(2, E.INVOICE_SENT, 5)]
    assert fold("INV-1", events).status is InvoiceStatus.CANCELED


def test_a_fraud_rejection_returns_pending_to_sent() -> None:
    events = [
        event(1, E.INVOICE_SENT, 0, balanceAmount="100.00"),
        event(2, E.INVOICE_PAYMENT_PENDING, 5),
        event(3, E.INVOICE_PAYMENT_REJECTED, 9),
    ]
    assert fold("INV-1", events[:2]).status is InvoiceStatus.PENDING
    assert fold("INV-1", events).status is InvoiceStatus.SENT


def test_unknowns_stay_unknown() -> None:
    state = fold("INV-1", [event(1, E.INVOICE_REMINDER_SENT, 0)])
    assert state.status is None
    assert (state.total_amount, state.balance_amount, state.paid_amount) == (None, None, None)
    assert state.currency is None and state.collections == ()


def test_a_payment_seen_twice_counts_once() -> None:
    payment = {"transactionId": "tx-1", "amount": "40.00"}
    events = [
        event(1, E.INVOICE_SENT, 0, balanceAmount="100.00", totalAmount="100.00"),
        event(2, E.PAYMENT_RECEIVED, 10, payment=payment),  # from invoiceHistory, no balance
        event(3, E.INVOICE_PARTIALLY_PAID, 11, balanceAmount="60.00", payment=payment),
        event(4, E.PAYMENT_RECEIVED, 12, payment=payment),
    ]
    state = fold("INV-1", events)
    assert len(state.payments) == 1
    assert sum(c.amount for c in state.collections) == Decimal("40.00")
    assert state.balance_amount == Decimal("60.00")


def test_a_payment_reported_after_the_balance_that_included_it_counts_once() -> None:
    events = [
        event(1, E.INVOICE_SENT, 0, balanceAmount="100.00", totalAmount="100.00"),
        event(2, E.INVOICE_PAID, 10, balanceAmount="0.00"),  # the webhook names no transaction
        event(3, E.PAYMENT_RECEIVED, 11, payment={"transactionId": "tx-9", "amount": "100.00"}),
    ]
    state = fold("INV-1", events)
    assert sum(c.amount for c in state.collections) == Decimal("100.00")
    assert [p.transaction_id for p in state.payments] == ["tx-9"]


def test_the_state_as_of_a_past_moment_ignores_later_events() -> None:
    state = fold_as_of("INV-1", lifecycle(), T0 + timedelta(minutes=15))
    assert state.status is InvoiceStatus.PARTIAL
    assert state.balance_amount == Decimal("60.00")


def test_ties_in_provider_time_are_broken_by_store_position() -> None:
    events = [
        event(2, E.INVOICE_PAID, 0, balanceAmount="0.00"),
        event(1, E.INVOICE_SENT, 0, balanceAmount="100.00"),
    ]
    state = fold("INV-1", events)
    assert state.balance_amount == Decimal("0.00")
    assert state.status is InvoiceStatus.PAID


def test_an_observation_states_the_status_as_the_provider_saw_it() -> None:
    events = [event(1, E.INVOICE_CREATED, 0), event(2, E.INVOICE_OBSERVED, 5, status="PENDING")]
    assert fold("INV-1", events).status is InvoiceStatus.PENDING


@st.composite
def histories(draw: st.DrawFn) -> list[RecordedEvent]:
    types = [
        E.INVOICE_SENT,
        E.INVOICE_PARTIALLY_PAID,
        E.INVOICE_PAID,
        E.INVOICE_CANCELED,
        E.INVOICE_REMINDER_SENT,
        E.PAYMENT_RECEIVED,
        E.INVOICE_PAYMENT_PENDING,
        E.INVOICE_PAYMENT_REJECTED,
    ]
    count = draw(st.integers(1, 8))
    events = []
    for position in range(1, count + 1):
        data: dict[str, Any] = {}
        if draw(st.booleans()):
            data["balanceAmount"] = f"{draw(st.integers(0, 10_000)) / 100:.2f}"
        if draw(st.booleans()):
            data["payment"] = {
                "transactionId": f"tx-{draw(st.integers(0, 3))}",
                "amount": f"{draw(st.integers(1, 5_000)) / 100:.2f}",
            }
        events.append(
            event(position, draw(st.sampled_from(types)), draw(st.integers(0, 5)), **data)
        )
    return events


@given(histories(), st.randoms())
def test_any_history_folds_the_same_in_any_delivery_order(
    events: list[RecordedEvent], random: Any
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    assert fold("INV-1", shuffled) == fold("INV-1", events)


def test_the_state_history_has_one_state_per_provider_instant() -> None:
    events = [*lifecycle(), event(4, E.INVOICE_REMINDER_SENT, 20)]
    history = state_history("INV-1", events)
    assert [s.status for s in history] == [
        InvoiceStatus.SENT,
        InvoiceStatus.PARTIAL,
        InvoiceStatus.PAID,
    ]
    assert history[-1] == fold("INV-1", events)
