"""The money model where Cybersource says least: installments whose history carries no
amounts, operator corrections, provisional figures inferred from notifications alone, and
answers that stand against later provisional notifications."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.events import EventSource, RecordedEvent
from service.domain.invoice import InvoiceState, fold, state_history
from service.domain.payloads import (
    CorrectionRecorded,
    NotificationIdentity,
    NotificationReceived,
    StatedFields,
    decode,
    encode,
)
from service.domain.status import InvoiceStatus
from tests.support.invoice_facts import ORG, D, E, Facts, at, collected
from tests.support.lifecycles import Delivery, notifications, simulate

DAY = 24 * 60  # minutes


def amounts(state: InvoiceState) -> list[Decimal | None]:
    return [collection.amount for collection in state.collections]


# --- installments whose history carries no amounts -----------------------------------------


def installments(lag_minutes: float) -> Facts:
    """Sent for 100.00; 30.00 paid on day 1 at 10:00 and 70.00 on day 2 at 10:00. Webhooks
    dated ``lag_minutes`` off their history entries; history PAYMENT entries without
    transactionDetails (seed 003's example shape); answered on day 3."""
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, DAY + 600 + lag_minutes, balance_amount=D("70.00"))
    facts.notified(E.INVOICE_PAID, 2 * DAY + 600 + lag_minutes, balance_amount=D("0.00"))
    facts.history("SEND", 0).history("PAYMENT", DAY + 600).history("PAYMENT", 2 * DAY + 600)
    return facts.observed(3 * DAY, "PAID", "100.00", "0.00")


@pytest.mark.parametrize("lag_minutes", [-5, -0.001, 0, 0.001, 5])
def test_installments_without_amounts_are_split_by_the_webhook_balances_on_either_side(
    lag_minutes: float,
) -> None:
    facts = installments(lag_minutes)
    state = facts.state()
    assert (state.status, state.total_amount, state.balance_amount) == (
        InvoiceStatus.PAID, D("100.00"), D("0.00")
    )  # fmt: skip
    assert [p.amount for p in state.payments] == [D("30.00"), D("70.00")]
    assert amounts(state) == [D("30.00"), D("70.00")]
    assert not any(collection.provisional for collection in state.collections)
    after_first = facts.as_of(DAY + 720)
    assert (after_first.status, after_first.balance_amount) == (InvoiceStatus.PARTIAL, D("70.00"))


def test_an_answer_before_the_webhooks_is_split_when_they_arrive() -> None:
    """The webhooks are dated after the answer, or arrive after it: the split is revised."""
    facts = Facts().history("SEND", 0).history("PAYMENT", DAY).history("PAYMENT", DAY + 1)
    facts.observed(DAY + 2, "PAID", "100.00", "0.00")
    assert amounts(facts.state()) == [None, None]
    facts.notified(E.INVOICE_PAID, DAY + 3, balance_amount=D("0.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, DAY + 3, balance_amount=D("55.00"))
    assert amounts(facts.state()) == [D("45.00"), D("55.00")]


def test_installments_without_amounts_or_webhooks_stay_unknown_never_whole_on_the_first() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", DAY + 600)
    facts.history("PAYMENT", 2 * DAY + 600).observed(3 * DAY, "PAID", "100.00", "0.00")
    state = facts.state()
    assert (state.status, state.total_amount, state.balance_amount) == (
        InvoiceStatus.PAID, D("100.00"), D("0.00")
    )  # fmt: skip
    assert amounts(state) == [None, None]
    assert collected(state) is None
    after_first = facts.as_of(DAY + 720)
    assert (after_first.status, after_first.balance_amount) == (InvoiceStatus.PARTIAL, None)
    assert facts.as_of(2 * DAY + 660).status is InvoiceStatus.PAID


def test_one_webhook_balance_attributes_one_installment_and_the_answer_the_other() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", DAY + 600)
    facts.history("PAYMENT", 2 * DAY + 600)
    facts.notified(E.INVOICE_PAID, 2 * DAY + 601)  # says nothing of the first
    facts.observed(3 * DAY, "PAID", "100.00", "0.00")
    assert amounts(facts.state()) == [None, None]
    facts.notified(E.INVOICE_PARTIALLY_PAID, DAY + 599, balance_amount=D("64.50"))
    assert amounts(facts.state()) == [D("35.50"), D("64.50")]


def test_a_webhook_balance_that_fits_two_installments_attributes_neither() -> None:
    """30 + 30 + 40 within minutes; only the second payer's webhook arrived: its balance of
    40.00 could follow the first payment or the second, so no split is taken from it."""
    facts = Facts().history("SEND", 0)
    for minute in (10, 11, 12):
        facts.history("PAYMENT", minute)
    facts.notified(E.INVOICE_PARTIALLY_PAID, 11, balance_amount=D("40.00"))
    facts.observed(20, "PAID", "100.00", "0.00")
    assert amounts(facts.state()) == [None, None, None]


def test_the_transaction_details_answer_gives_an_entry_its_amount() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", DAY, "tx1")
    facts.history("PAYMENT", 2 * DAY, "tx2").observed(3 * DAY, "PAID", "100.00", "0.00")
    assert amounts(facts.state()) == [None, None]
    facts.transaction("tx1", "12.34", 3 * DAY + 1)
    state = facts.state()
    assert amounts(state) == [D("12.34"), D("87.66")]
    assert [p.transaction_id for p in state.payments] == ["tx1", "tx2"]


# --- corrections -----------------------------------------------------------------------------


def test_a_correction_raising_a_balance_replaces_the_fact_it_corrects() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("70.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 20, balance_amount=D("40.00"))  # position 3
    facts.corrected(3, E.INVOICE_PARTIALLY_PAID, 20, balance_amount=D("50.00"))
    state = facts.state()
    assert (state.status, state.balance_amount) == (InvoiceStatus.PARTIAL, D("50.00"))
    assert len(state.payments) == 2
    assert amounts(state) == [D("30.00"), D("20.00")]


def test_a_wrong_paid_corrected_into_a_partial_payment_reopens_the_invoice() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PAID, 10)  # position 2
    assert facts.state().status is InvoiceStatus.PAID
    facts.corrected(2, E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("60.00"))
    state = facts.state()
    assert (state.status, state.balance_amount, collected(state)) == (
        InvoiceStatus.PARTIAL, D("60.00"), D("40.00")
    )  # fmt: skip


def test_a_correction_of_a_correction_stands_over_it() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("40.00"))  # position 2
    facts.corrected(2, E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("50.00"))  # position 3
    facts.corrected(3, E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("45.00"))
    state = facts.state()
    assert (state.balance_amount, collected(state)) == (D("45.00"), D("55.00"))


def test_a_correction_dated_later_still_takes_the_corrected_facts_place() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("40.00"))  # position 2
    facts.notified(E.INVOICE_PARTIALLY_PAID, 20, balance_amount=D("30.00"))
    facts.corrected(2, E.INVOICE_PARTIALLY_PAID, 90, balance_amount=D("50.00"))
    state = facts.state()
    assert amounts(state) == [D("50.00"), D("20.00")]
    assert facts.as_of(15).balance_amount == D("50.00")


def corrected_in_place(
    events: list[RecordedEvent], index: int, replacement: NotificationReceived, type_: str
) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    """The events with a correction of ``events[index]`` appended, and the events as if the
    corrected fact had been received in its place."""
    original = events[index]
    correction = CorrectionRecorded(
        replacement.organization_id, replacement.invoice_number, replacement.stated,
        replacement.payment, replacement.notification, reason="operator",
        corrects_position=original.position,
    )  # fmt: skip
    position = max(event.position for event in events) + 1
    appended = RecordedEvent(
        position, original.stream_id, position, type_, 2, original.occurred_at + timedelta(days=1),
        original.recorded_at, EventSource.OPERATOR, f"correction-{position}", encode(correction),
    )  # fmt: skip
    in_place = list(events)
    in_place[index] = replace(original, type=type_, data=encode(replacement))
    return [*events, appended], in_place


def comparable(states: list[InvoiceState]) -> list[InvoiceState]:
    return [replace(state, last_position=0) for state in states]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_correcting_an_event_equals_having_received_the_corrected_fact(seed: int) -> None:
    rng = random.Random(seed)
    life = simulate(rng)
    delivery = Delivery()
    notifications(life, rng, delivery, lost_share=0.2)
    events = delivery.recorded(rng)
    webhooks = [i for i, event in enumerate(events) if event.source is EventSource.WEBHOOK]
    if not webhooks:
        return
    index = rng.choice(webhooks)
    original = decode(events[index])
    assert isinstance(original, NotificationReceived)
    balance = original.stated.balance_amount or D(0)
    stated = replace(original.stated, balance_amount=balance * D(rng.choice(["0", "0.5", "2"])))
    type_ = rng.choice([E.INVOICE_PAID, E.INVOICE_PARTIALLY_PAID, E.INVOICE_REMINDER_SENT])
    replacement = replace(original, stated=stated, notification=NotificationIdentity("n-fixed"))
    with_correction, in_place = corrected_in_place(events, index, replacement, type_)
    assert comparable(state_history(life.number, with_correction, life.organization_id)) == (
        comparable(state_history(life.number, in_place, life.organization_id))
    )


# --- provisional figures, and answers that stand ---------------------------------------------


def test_a_webhook_only_first_payment_is_collected_provisionally() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PAID, 10)
    state = facts.state()
    assert (state.total_amount, state.balance_amount, collected(state)) == (
        D("100.00"), D(0), D("100.00")
    )  # fmt: skip
    assert state.provisional_amounts == ("total_amount", "paid_amount")
    assert [c.provisional for c in state.collections] == [True]
    facts.history("SEND", 0).history("PAYMENT", 10).observed(20, "PAID", "100.00", "0.00")
    confirmed = facts.state()
    assert confirmed.provisional_amounts == ()
    assert [(c.amount, c.provisional) for c in confirmed.collections] == [(D("100.00"), False)]


def test_an_answer_corrects_a_provisional_collection_after_a_silent_update() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PAID, 10)
    facts.history("SEND", 0).history("UPDATE", 5).history("PAYMENT", 10)
    facts.observed(20, "PAID", "80.00", "0.00")
    state = facts.state()
    assert [(c.amount, c.provisional) for c in state.collections] == [(D("80.00"), False)]


def test_a_reminder_after_a_lost_payment_does_not_restate_the_total() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_REMINDER_SENT, 10, balance_amount=D("70.00"))
    state = facts.state()
    assert (state.total_amount, state.balance_amount) == (D("100.00"), D("70.00"))
    assert [(c.amount, c.provisional) for c in state.collections] == [(D("30.00"), True)]


def test_a_reminder_after_an_answer_does_not_restate_the_answered_total() -> None:
    facts = Facts().history("SEND", 0).observed(5, "SENT", "100.00", "100.00")
    facts.notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_REMINDER_SENT, 10, balance_amount=D("70.00"))
    state = facts.state()
    assert (state.total_amount, state.balance_amount) == (D("100.00"), D("70.00"))
    assert "total_amount" not in state.provisional_amounts
    assert [(c.amount, c.provisional) for c in state.collections] == [(D("30.00"), True)]


def test_a_send_stamped_after_the_answer_does_not_override_the_answered_total() -> None:
    facts = Facts().history("SEND", 0).history("UPDATE", 2)
    facts.observed(5, "SENT", "150.00", "150.00", due="2026-05-01")
    facts.notified(E.INVOICE_SENT, 6, balance_amount=D("100.00"), total_amount=D("100.00"),
                   due_date=datetime(2026, 4, 1).date())  # fmt: skip
    state = facts.state()
    assert (state.total_amount, state.balance_amount, state.due_date) == (
        D("150.00"), D("150.00"), datetime(2026, 5, 1).date()
    )  # fmt: skip
    assert state.collections == ()


def test_a_notification_naming_only_an_amount_after_the_answer_is_a_second_payer() -> None:
    """The history's 30.00 payment had its own notification before the answer: a second
    30.00 one second after the answer is new money."""
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, paid="30.00")
    facts.history("SEND", 0).history("PAYMENT", 10, "tx-1", "30.00")
    facts.observed(11, "PARTIAL", "100.00", "70.00")
    facts.notified(E.INVOICE_PARTIALLY_PAID, 11 + 1 / 60, paid="30.00")
    state = facts.state()
    assert (state.balance_amount, collected(state)) == (D("40.00"), D("60.00"))


def test_a_customer_name_removed_by_an_update_is_removed() -> None:
    facts = Facts()
    named = NotificationReceived(
        ORG, "1001", StatedFields("USD", None, D(100), customer_name="Tanya Lee"), None
    )
    facts._add(E.INVOICE_SENT, at(0), EventSource.WEBHOOK, encode(named))
    assert facts.state().customer_name == "Tanya Lee"
    facts.history("SEND", 0).history("UPDATE", 5).observed(10, "SENT", "100.00", "100.00")
    assert facts.state().customer_name is None
    facts.observed(20, "SENT", "100.00", "100.00", customer_name="T. Lee")
    assert facts.state().customer_name == "T. Lee"


def test_a_rejected_review_after_a_partial_payment_returns_the_invoice_to_sent() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 10, "tx1", "30")
    facts.history("PENDING", 20, "tx2", "70").history("REJECTED", 30, "tx2")
    facts.observed(40, "SENT", "100.00", "70.00")
    assert facts.as_of(35).status is InvoiceStatus.SENT
    assert (facts.state().status, collected(facts.state())) == (InvoiceStatus.SENT, D("30"))
    answered_partial = Facts().history("SEND", 0).history("PAYMENT", 10, "tx1", "30")
    answered_partial.history("PENDING", 20, "tx2").history("REJECTED", 30, "tx2")
    answered_partial.observed(40, "PARTIAL", "100.00", "70.00")
    assert answered_partial.state().status is InvoiceStatus.PARTIAL  # the answer is followed


def test_a_provisional_total_is_never_summed_as_confirmed() -> None:
    state = fold("1001", Facts().notified(E.INVOICE_SENT, 0, balance_amount=D(10)).events, ORG)
    assert state.provisional_amounts == ("total_amount", "paid_amount")
    stated = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D(10), total_amount=D(10))
    assert stated.state().provisional_amounts == ()
