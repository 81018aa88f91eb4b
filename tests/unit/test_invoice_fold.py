"""The money model: each rule of docs/money-model.md as a test, then properties
over generated lifecycles with generated notification timings, losses and duplicates."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.domain.events import EventSource, RecordedEvent
from service.domain.identity import InvoiceKey, invoices_in_stream
from service.domain.invoice import (
    FoldSnapshot,
    InvoiceState,
    continued_history,
    fold,
    fold_as_of,
    folded_history,
    state_history,
)
from service.domain.payloads import (
    NotificationIdentity,
    NotificationReceived,
    PaymentReported,
    StatedFields,
    decode,
    encode,
)
from service.domain.status import InvoiceStatus
from tests.support.invoice_facts import ORG, D, E, Facts, at, collected
from tests.support.lifecycles import Delivery, notifications, observe, simulate

# --- payments counted once ------------------------------------------------------------------


@pytest.mark.parametrize("lag_seconds", [-120, -0.001, 0, 0.001, 120])
def test_a_payment_in_a_notification_and_in_the_history_counts_once_whatever_their_timing(
    lag_seconds: float,
) -> None:
    """Three payers of 30 + 30 + 40, the reconciler asking after each payment."""
    lag = lag_seconds / 60
    facts = (
        Facts()
        .history("CREATE", 0)
        .history("SEND", 1)
        .notified(E.INVOICE_SENT, 1 + lag, balance_amount=D("100.00"))
    )
    facts.observed(2, "SENT", "100.00", "100.00")
    history_minutes = []
    for index, balance in enumerate(["70", "40", "0"]):
        paid_at = 10 * (index + 1)
        history_minutes.append(paid_at)
        kind = E.INVOICE_PAID if balance == "0" else E.INVOICE_PARTIALLY_PAID
        facts.notified(kind, paid_at + lag, balance_amount=D(balance))
        for earlier, moment in enumerate(history_minutes):
            facts.history("PAYMENT", moment, f"tx{earlier}", ["30", "30", "40"][earlier])
        status = "PAID" if balance == "0" else "PARTIAL"
        facts.observed(paid_at + 5, status, "100.00", f"{balance}.00")
        assert collected(facts.state()) == D(100) - D(balance)
    state = facts.state()
    assert collected(state) == D("100.00")
    assert (state.status, state.balance_amount) == (InvoiceStatus.PAID, D(0))
    assert [p.transaction_id for p in state.payments] == ["tx0", "tx1", "tx2"]


def test_a_notification_naming_only_an_amount_is_the_history_payment_of_that_amount() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 10, "tx1", "30")
    facts.observed(11, "PARTIAL", "100.00", "70.00")
    notice = NotificationReceived(
        ORG,
        "1001",
        StatedFields(currency="USD"),
        PaymentReported(None, D("30")),
        NotificationIdentity(),
    )
    facts._add(E.INVOICE_PARTIALLY_PAID, at(12), EventSource.WEBHOOK, encode(notice))
    assert collected(facts.state()) == D("30")


def test_two_identical_history_payments_in_one_millisecond_are_two_payments() -> None:
    facts = Facts().history("SEND", 0)
    facts.history("PAYMENT", 10, amount="10", occurrence=0)
    facts.history("PAYMENT", 10, amount="10", occurrence=1)
    facts.observed(11, "PARTIAL", "100.00", "80.00")
    assert collected(facts.state()) == D("20")


def test_a_history_entry_recorded_in_version_1_and_again_in_version_2_counts_once() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 10, "tx1", "30")
    version_1 = facts.events[-1]
    legacy_data = {
        k: v for k, v in version_1.data.items() if k not in ("organizationId", "occurrence")
    }
    facts.events.append(
        RecordedEvent(3, "1001", 3, E.PAYMENT_RECEIVED, 1, at(10), at(10), EventSource.RECONCILER,
                      "legacy", legacy_data)
    )  # fmt: skip
    facts.observed(11, "PARTIAL", "100.00", "70.00")
    assert decode(facts.events[2]).organization_id is None  # type: ignore[union-attr]
    assert collected(facts.state()) == D("30")


# --- totals updated before payment ----------------------------------------------------------


def test_a_total_updated_before_payment_is_the_total_from_the_update_on() -> None:
    facts = Facts().history("CREATE", 0).history("SEND", 1)
    facts.notified(E.INVOICE_SENT, 1, balance_amount=D("150.00"))
    facts.history("UPDATE", 5)
    facts.history("PAYMENT", 10, "tx1", "150").history("PAYMENT", 20, "tx2", "60")
    facts.observed(21, "PAID", "210.00", "0.00")
    assert collected(facts.state()) == D("210.00")
    before_update, between = facts.as_of(3), facts.as_of(7)
    assert (before_update.total_amount, before_update.balance_amount) == (D("150.00"),) * 2
    assert (between.total_amount, between.balance_amount) == (D("210.00"),) * 2
    assert facts.as_of(15).balance_amount == D("60.00")


def test_the_first_payment_a_notification_reports_is_provisional_until_observed() -> None:
    """The total may have been updated since it was stated (updates notify nobody): the
    balance before and after tell the best figure, labelled, until Cybersource answers."""
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("150.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("40.00"))
    state = facts.state()
    assert (state.total_amount, state.balance_amount, state.paid_amount) == (
        D("150.00"), D("40.00"), D("110.00")
    )  # fmt: skip
    assert state.provisional_amounts == ("total_amount", "paid_amount")
    assert [(c.amount, c.provisional) for c in state.collections] == [(D("110.00"), True)]
    facts.notified(E.INVOICE_PARTIALLY_PAID, 20, balance_amount=D("10.00"))
    assert [(c.amount, c.provisional) for c in facts.state().collections] == [
        (D("110.00"), True), (D("30.00"), False)
    ]  # fmt: skip
    facts.history("SEND", 0).history("UPDATE", 5).history("PAYMENT", 10, "tx1", "60")
    facts.history("PAYMENT", 20, "tx2", "30").observed(21, "PARTIAL", "100.00", "10.00")
    state = facts.state()
    assert collected(state) == D("90.00")
    assert state.provisional_amounts == ()
    assert [(c.amount, c.provisional) for c in state.collections] == [
        (D("60"), False), (D("30"), False)
    ]  # fmt: skip


def test_a_first_payment_whose_balance_exceeds_the_known_one_leaves_the_total_unknown() -> None:
    """The total was raised since the send (updates notify nobody): how much was paid is not
    known until Cybersource is asked."""
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("150.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, balance_amount=D("160.00"))
    state = facts.state()
    assert (state.total_amount, state.balance_amount, state.paid_amount) == (None, D("160"), None)
    assert collected(state) is None


def known_collections(state: InvoiceState) -> list[Decimal]:
    return [c.amount for c in state.collections if c.amount is not None]


def test_a_send_dated_after_the_first_payment_is_no_money_though_the_total_was_raised() -> None:
    """Sent for 10.00, updated to 200.00 (no notification), 4.92 paid: the send's eventDate
    strays minutes after the payment's, so its balance of 10.00 is folded after 195.08."""
    facts = Facts().notified(E.INVOICE_PARTIALLY_PAID, 1, balance_amount=D("195.08"))
    facts.notified(E.INVOICE_SENT, 2, balance_amount=D("10.00"))
    state = facts.state()
    assert known_collections(state) == []
    assert (state.status, state.total_amount, state.balance_amount) == (
        InvoiceStatus.PARTIAL, None, D("195.08")
    )  # fmt: skip
    facts.history("SEND", 0).history("UPDATE", 0.5).history("PAYMENT", 1, "tx1", "4.92")
    facts.observed(3, "PARTIAL", "200.00", "195.08")
    state = facts.state()
    assert (state.balance_amount, collected(state)) == (D("195.08"), D("4.92"))


def test_a_late_send_stating_a_total_does_not_set_the_total_once_money_arrived() -> None:
    """The total it states may be one an update has changed since."""
    facts = Facts().notified(E.INVOICE_PARTIALLY_PAID, 1, balance_amount=D("195.08"))
    facts.notified(E.INVOICE_SENT, 2, balance_amount=D("300.00"), total_amount=D("300.00"))
    state = facts.state()
    assert (state.total_amount, state.balance_amount) == (None, D("195.08"))
    assert known_collections(state) == []


def test_a_reminder_below_the_known_balance_moves_no_money_the_next_payment_counts_it() -> None:
    """A reminder may be older than an update, or newer than a payment whose notification
    was lost: which, only a payment's balance or Cybersource can tell."""
    facts = Facts().notified(E.INVOICE_PARTIALLY_PAID, 0, balance_amount=D("60.00"))
    facts.notified(E.INVOICE_REMINDER_SENT, 5, balance_amount=D("40.00"))
    state = facts.state()
    assert (state.balance_amount, collected(state), known_collections(state)) == (
        D("60.00"), None, []
    )  # fmt: skip
    facts.notified(E.INVOICE_PARTIALLY_PAID, 7, balance_amount=D("25.00"))
    assert known_collections(facts.state()) == [D("35.00")]


def test_a_send_between_payments_does_not_let_an_older_balance_count_twice() -> None:
    """23, 3184 and 3177 paid on a total raised from 8844 to 22709 after sending: the 3184's
    notification is dated minutes before the send's, the 23's after it."""
    facts = Facts().notified(E.INVOICE_PARTIALLY_PAID, -2, "3184", balance_amount=D("19502"))
    facts.notified(E.INVOICE_SENT, 0, balance_amount=D("8844"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 4, "23", balance_amount=D("22686"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 10, "3177", balance_amount=D("16325"))
    state = facts.state()
    assert known_collections(state) == [D("3184"), D("3177")]
    assert state.balance_amount == D("16325")


# --- observations supersede ------------------------------------------------------------------


def test_an_observation_supersedes_a_stale_notification_dated_before_it() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 5, "tx1", "30")
    facts.history("PAYMENT", 6, "tx2", "70")
    facts.notified(E.INVOICE_PARTIALLY_PAID, 8, balance_amount=D("70.00"))  # late and stale
    facts.observed(9, "PAID", "100.00", "0.00")
    state = facts.state()
    assert (state.status, state.balance_amount, collected(state)) == (
        InvoiceStatus.PAID, D(0), D(100)
    )  # fmt: skip


def test_a_stale_notification_after_the_observation_changes_no_money() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 5, "tx1", "100")
    facts.observed(6, "PAID", "100.00", "0.00")
    facts.notified(E.INVOICE_PARTIALLY_PAID, 9, balance_amount=D("70.00"))
    facts.notified(E.INVOICE_REMINDER_SENT, 10, balance_amount=D("70.00"))
    state = facts.state()
    assert (state.status, state.balance_amount, collected(state)) == (
        InvoiceStatus.PAID, D(0), D(100)
    )  # fmt: skip


def test_paid_means_nothing_owed_even_without_a_balance() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D("100.00"))
    facts.notified(E.INVOICE_PARTIALLY_PAID, 5, balance_amount=D("60.00"))
    facts.notified(E.INVOICE_PAID, 9)
    facts.notified(E.INVOICE_REMINDER_SENT, 10, balance_amount=D("60.00"))
    state = facts.state()
    assert (state.status, state.balance_amount) == (InvoiceStatus.PAID, D(0))
    assert [(c.amount, c.provisional) for c in state.collections] == [
        (D("40.00"), True), (D("60.00"), False)
    ]  # fmt: skip


def test_an_invoice_known_only_from_the_reconciler_has_a_past() -> None:
    facts = Facts().history("DRAFT", 0).history("CREATE", 1).history("SEND", 2)
    facts.history("PAYMENT", 30, "tx1", "25").observed(40, "PARTIAL", "100.00", "75.00")
    for minutes, status, balance in [(0, "DRAFT", "100"), (1.5, "CREATED", "100"),
                                     (10, "SENT", "100"), (35, "PARTIAL", "75")]:  # fmt: skip
        state = facts.as_of(minutes)
        assert state.status == InvoiceStatus(status)
        assert (state.currency, state.total_amount, state.balance_amount) == (
            "USD", D(100), D(balance)
        )  # fmt: skip
        assert state.due_date == date(2026, 4, 1)
    assert facts.as_of(-1).status is None


# --- what is a payment ------------------------------------------------------------------------


def test_pending_and_rejected_reviews_are_not_payments() -> None:
    facts = Facts().history("SEND", 0)
    facts.history("PENDING", 5, "tx1", "100").history("REJECTED", 6, "tx1", "100")
    facts.history("REFUND", 7, "tx9", "5").observed(8, "SENT", "100.00", "100.00")
    state = facts.state()
    assert (state.status, state.payments, state.collections) == (InvoiceStatus.SENT, (), ())
    assert facts.as_of(5.5).status is InvoiceStatus.PENDING


def test_a_payment_entry_without_details_counts_what_the_observed_paid_amount_needs() -> None:
    facts = Facts().history("SEND", 0).history("PAYMENT", 5, "tx1", "30").history("PAYMENT", 9)
    facts.observed(10, "PAID", "100.00", "0.00")
    state = facts.state()
    assert [c.amount for c in state.collections] == [D("30"), D("70.00")]
    assert [p.amount for p in state.payments] == [D("30"), D("70.00")]


def test_an_invoice_first_seen_through_a_reminder_is_open() -> None:
    state = Facts().notified(E.INVOICE_REMINDER_SENT, 0, balance_amount=D("50.00")).state()
    assert state.status is InvoiceStatus.SENT
    assert (state.total_amount, state.balance_amount) == (D(50), D(50))


def test_unknowns_stay_unknown() -> None:
    facts = Facts()
    notice = NotificationReceived(ORG, "1001", StatedFields(), None, NotificationIdentity())
    facts._add(E.INVOICE_REMINDER_SENT, at(0), EventSource.WEBHOOK, encode(notice))
    state = facts.state()
    assert (state.total_amount, state.balance_amount, state.paid_amount) == (None, None, None)
    assert state.currency is None and state.collections == ()


def test_a_late_send_does_not_reopen_a_paid_invoice() -> None:
    facts = Facts().notified(E.INVOICE_PAID, 0).notified(E.INVOICE_SENT, 5, balance_amount=D(9))
    assert facts.state().status is InvoiceStatus.PAID


def test_a_send_does_not_reopen_a_canceled_invoice() -> None:
    facts = Facts().notified(E.INVOICE_CANCELED, 0).notified(E.INVOICE_SENT, 5)
    assert facts.state().status is InvoiceStatus.CANCELED


def test_two_organizations_invoice_1001_are_two_invoices() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 0, balance_amount=D(10))
    other = NotificationReceived("org-b", "1001", StatedFields("JPY", None, D(500)), None)
    facts._add(E.INVOICE_SENT, at(1), EventSource.WEBHOOK, encode(other))
    legacy = {"invoiceNumber": "1001", "historyEvent": "SEND"}
    facts.events.append(
        RecordedEvent(3, "1001", 3, E.INVOICE_SENT, 1, at(2), at(2), EventSource.RECONCILER,
                      "legacy", legacy)
    )  # fmt: skip
    grouped = invoices_in_stream("1001", facts.events)
    assert set(grouped) == {InvoiceKey("org-a", "1001"), InvoiceKey("org-b", "1001"),
                            InvoiceKey("", "1001")}  # fmt: skip
    assert fold("1001", grouped[InvoiceKey("org-b", "1001")], "org-b").currency == "JPY"


# --- properties over generated lifecycles ----------------------------------------------------


def generated(seed: int) -> tuple[Any, list[RecordedEvent], list[datetime]]:
    rng = random.Random(seed)
    life = simulate(rng)
    delivery = Delivery()
    notifications(life, rng, delivery)
    moments = [entry.moment for entry in life.entries]
    observed_at = sorted(
        moments[rng.randrange(len(moments))] + timedelta(seconds=rng.uniform(0.001, 400))
        for _ in range(rng.randrange(0, 4))
    )
    for moment in observed_at:
        observe(life, moment, delivery)
    return life, delivery.recorded(rng), observed_at


def assert_money_rules(states: list[InvoiceState]) -> None:
    """PAID owes nothing; where total and balance are known the collections sum to their
    difference, unless several of them are of unknown amount (which paid what is not known:
    then the known ones leave room for them)."""
    for state in states:
        if state.status is InvoiceStatus.PAID:
            assert state.balance_amount == 0, state
        if state.total_amount is not None and state.balance_amount is not None:
            paid = state.total_amount - state.balance_amount
            unknown = [c for c in state.collections if c.amount is None]
            if len(unknown) > 1:
                assert sum(known_collections(state), D(0)) < paid, state
            else:
                assert state.collected_amount == paid, state


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32))
def test_collections_equal_total_less_balance_at_every_known_moment(seed: int) -> None:
    life, events, _ = generated(seed)
    assert_money_rules(state_history(life.number, events, life.organization_id))


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32))
def test_the_state_after_an_observation_is_the_observation(seed: int) -> None:
    life, events, observed_at = generated(seed)
    for moment in observed_at:
        truth = life.truth_at(moment)
        state = fold_as_of(life.number, events, moment, life.organization_id)
        assert state.status is not None and truth is not None
        assert (state.status.value, state.total_amount, state.balance_amount, state.due_date) == (
            truth.status, truth.total, truth.balance, truth.due_date
        )  # fmt: skip
        assert state.currency == life.currency


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32))
def test_without_an_observation_collections_never_exceed_what_was_paid(seed: int) -> None:
    rng = random.Random(seed)
    life = simulate(rng)
    delivery = Delivery()
    notifications(life, rng, delivery)
    state = fold(life.number, delivery.recorded(rng), life.organization_id)
    assert sum(confirmed_collections(state), D(0)) <= life.paid_at(datetime.max.replace(tzinfo=UTC))
    assert_money_rules([state])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_two_organizations_sharing_an_invoice_number_in_one_stream_never_mix_money(
    seed: int,
) -> None:
    """org-a's and org-b's invoice 1012, each lived within a second or over minutes, their
    notifications interleaved in one stream; then each answered by Get Invoice Details."""
    rng = random.Random(seed)
    lives = [simulate(rng, organization, "1012") for organization in ("org-a", "org-b")]
    delivery = Delivery()
    for life in lives:
        notifications(life, rng, delivery)
    for observed in (False, True):
        if observed:
            for life in lives:
                observe(life, life.entries[-1].moment + timedelta(minutes=10), delivery)
        grouped = invoices_in_stream("1012", delivery.recorded(rng))
        for life in lives:
            events = grouped.get(InvoiceKey(life.organization_id, "1012"), [])
            state = fold("1012", events, life.organization_id)
            paid = life.paid_at(datetime.max.replace(tzinfo=UTC))
            assert sum(confirmed_collections(state), D(0)) <= paid
            assert_money_rules([state])
            assert state.currency in (None, life.currency)
            if observed:
                truth = life.truths[-1]
                assert (state.total_amount, state.balance_amount) == (truth.total, truth.balance)
                assert_no_collection_is_a_guess(life, state)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_after_a_final_observation_the_ledger_equals_cybersource(seed: int) -> None:
    rng = random.Random(seed)
    life = simulate(rng)
    delivery = Delivery()
    notifications(life, rng, delivery)
    last = life.entries[-1].moment + timedelta(minutes=10)
    observe(life, last, delivery)
    events = delivery.recorded(rng)
    state = fold(life.number, events, life.organization_id)
    truth = life.truth_at(last)
    assert truth is not None and state.status is not None
    assert (state.status.value, state.total_amount, state.balance_amount) == (
        truth.status, truth.total, truth.balance
    )  # fmt: skip
    assert_no_collection_is_a_guess(life, state)
    # Collections per day, as the collections report adds them, are the payments' days, where
    # every collection of the day is known.
    by_day: dict[date, Decimal | None] = {}
    for collection in state.collections:
        day = collection.collected_at.date()
        if collection.amount is None or by_day.get(day, D(0)) is None:
            by_day[day] = None
        else:
            by_day[day] = by_day.get(day, D(0)) + collection.amount  # type: ignore[operator]
    expected: dict[date, Decimal] = {}
    for entry in life.entries:
        if entry.event == "PAYMENT" and entry.amount:
            expected[entry.moment.date()] = expected.get(entry.moment.date(), D(0)) + entry.amount
    assert by_day.keys() == expected.keys()
    assert all(by_day[day] in (None, amount) for day, amount in expected.items())


def confirmed_collections(state: InvoiceState) -> list[Decimal]:
    return [c.amount for c in state.collections if c.amount is not None and not c.provisional]


def assert_no_collection_is_a_guess(life: Any, state: InvoiceState) -> None:
    """After Cybersource's answer, every collection is a payment of the history at its moment
    with its true amount, or of unknown amount; the known ones sum to what was paid unless
    several are unknown (then they leave room for them)."""
    paid = life.paid_at(datetime.max.replace(tzinfo=UTC))
    truth = {entry.moment: entry.amount for entry in life.entries if entry.event == "PAYMENT"}
    for collection in state.collections:
        assert collection.collected_at in truth, collection
        assert collection.amount in (None, truth[collection.collected_at]), collection
        assert not collection.provisional, collection
    unknown = sum(1 for collection in state.collections if collection.amount is None)
    assert unknown != 1
    if unknown:
        assert sum(known_collections(state), D(0)) < paid
    else:
        assert state.collected_amount == paid


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.randoms())
def test_any_delivery_order_folds_to_the_same_state(seed: int, rng: random.Random) -> None:
    life, events, _ = generated(seed)
    reordered = list(events)
    rng.shuffle(reordered)
    renumbered = [
        RecordedEvent(index, e.stream_id, index, e.type, e.schema_version, e.occurred_at,
                      e.recorded_at, e.source, e.idempotency_key, e.data)
        for index, e in enumerate(reordered, 1)
    ]  # fmt: skip
    if len({e.occurred_at for e in events}) < len(events):
        return  # ties are broken by arrival, by design
    first = fold(life.number, events, life.organization_id)
    second = fold(life.number, renumbered, life.organization_id)
    assert (first.status, first.total_amount, first.balance_amount, first.collections) == (
        second.status, second.total_amount, second.balance_amount, second.collections
    )  # fmt: skip


def folded_in_batches(
    life: Any, events: list[RecordedEvent], rng: random.Random
) -> tuple[list[InvoiceState], int]:
    """Fold events as a projector receives them, in batches in store order: onto the last
    snapshot where that is allowed, from all the facts otherwise. Returns the history and
    how many batches were folded onto a snapshot."""
    history: list[InvoiceState] = []
    snapshot: FoldSnapshot | None = None
    seen: list[RecordedEvent] = []
    continued = 0
    while len(seen) < len(events):
        batch = events[len(seen) : len(seen) + rng.randint(1, 3)]
        seen += batch
        following = continued_history(snapshot, batch) if snapshot else None
        if following is None:
            history, snapshot = folded_history(life.number, seen, life.organization_id)
        else:
            tail, snapshot = following
            history = history[:-1] + tail
            continued += 1
    return history, continued


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32))
# A payment the provider's history left without an amount, then a notification whose balance
# tells it: the full fold writes the amount into the states since; a snapshot cannot.
@example(163303)
def test_folding_later_facts_onto_a_snapshot_gives_the_full_fold(seed: int) -> None:
    life, events, _ = generated(seed)
    arrival = sorted(events, key=lambda event: event.position)
    history, _ = folded_in_batches(life, arrival, random.Random(seed))
    assert history == state_history(life.number, events, life.organization_id)


def test_facts_arriving_in_time_order_are_folded_onto_snapshots() -> None:
    continued = 0
    for seed in range(200):
        life, events, _ = generated(seed)
        in_time_order = sorted(events, key=lambda event: event.occurred_at)
        renumbered = [
            RecordedEvent(position, e.stream_id, position, e.type, e.schema_version,
                          e.occurred_at, e.recorded_at, e.source, e.idempotency_key, e.data)
            for position, e in enumerate(in_time_order, 1)
        ]  # fmt: skip
        history, count = folded_in_batches(life, renumbered, random.Random(seed))
        assert history == state_history(life.number, renumbered, life.organization_id)
        continued += count
    assert continued > 50  # most lifecycles end with notifications after their last observation


def test_a_notification_dated_before_the_snapshot_is_not_folded_onto_it() -> None:
    facts = Facts().notified(E.INVOICE_SENT, 10, balance_amount=D(10), total_amount=D(10))
    _, snapshot = folded_history("1001", facts.events, ORG)
    assert snapshot is not None
    facts.notified(E.INVOICE_PAID, 5, balance_amount=D(0))
    assert continued_history(snapshot, facts.events[1:]) is None
