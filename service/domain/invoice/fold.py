"""The fold's public entry points: an invoice's states from its facts, from scratch or
continued from a snapshot."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime

from service.domain.events import RecordedEvent
from service.domain.invoice.corrections import _corrected
from service.domain.invoice.facts import _FACT_ORDER, _Fact
from service.domain.invoice.provider_past import _ProviderPast
from service.domain.invoice.running import _Running
from service.domain.invoice.state import FoldSnapshot, InvoiceState
from service.domain.payloads import (
    CorrectionRecorded,
    InvoiceObserved,
    NotificationReceived,
    PersonalDataErased,
)
from service.domain.status import PAYMENT_NOTIFICATION_TYPES


def fold(
    invoice_number: str, events: Iterable[RecordedEvent], organization_id: str = ""
) -> InvoiceState:
    history = state_history(invoice_number, events, organization_id)
    return history[-1] if history else InvoiceState(invoice_number, organization_id)


def fold_as_of(
    invoice_number: str,
    events: Iterable[RecordedEvent],
    moment: datetime,
    organization_id: str = "",
) -> InvoiceState:
    """The state in force at provider time ``moment`` (facts at that instant included), as
    everything known now tells it."""
    history = state_history(invoice_number, events, organization_id)
    moments = [state.last_event_at or moment for state in history]
    at = bisect.bisect_right(moments, moment)
    return history[at - 1] if at else InvoiceState(invoice_number, organization_id)


def state_history(
    invoice_number: str, events: Iterable[RecordedEvent], organization_id: str = ""
) -> list[InvoiceState]:
    """Every state the invoice was in, one per distinct provider time, oldest first."""
    return folded_history(invoice_number, events, organization_id)[0]


def folded_history(
    invoice_number: str, events: Iterable[RecordedEvent], organization_id: str = ""
) -> tuple[list[InvoiceState], FoldSnapshot | None]:
    """``state_history``, and a snapshot to continue it from (None when the facts establish
    nothing yet, so that a later fact must be folded with them all)."""
    facts = _corrected(sorted(_invoice_facts(events), key=_FACT_ORDER))
    if not facts:
        return [], None
    running = _Running(invoice_number, organization_id)
    running.at_positions(facts)
    states: list[InvoiceState] = []
    observations = [fact for fact in facts if isinstance(fact.payload, InvoiceObserved)]
    horizon: tuple[datetime, int] | None = None
    if observations:
        horizon = observations[-1].order()
        states = _ProviderPast(running, facts, horizon).states()
    for fact in facts:
        if isinstance(fact.payload, NotificationReceived) and (
            horizon is None or fact.order() > horizon
        ):
            states.append(running.notified(fact, fact.payload))
    if not states:
        # Facts that establish nothing (history entries without their observation): the
        # invoice exists, and everything about it is unknown.
        return [running.snapshot(facts[0].moment)], None
    history = _merged_per_instant(states)
    return history, running.fold_snapshot(history[-1], facts)


def continued_history(
    snapshot: FoldSnapshot, events: Iterable[RecordedEvent]
) -> tuple[list[InvoiceState], FoldSnapshot] | None:
    """The states from ``snapshot.last_state`` on, once ``events`` are folded onto it, or
    None when they cannot be folded without the earlier facts.

    They can when every one is a notification ordered after every fact folded so far: the
    full fold would then apply the same steps, in the same order, to the same running
    figures (an observation or a history entry reshapes the invoice's past instead). The
    first state returned replaces ``last_state``: it is ``last_state`` itself unless a new
    fact shares its instant.

    One notification reshapes the past too: a payment notification stating a balance, when
    the provider's history left a payment's amount unknown. The balance it states may tell
    what that payment collected, and the full fold then writes the amount into every state
    since the payment.
    """
    facts = sorted(map(_Fact.of, events), key=_FACT_ORDER)
    if not facts or facts[0].key <= snapshot.last_fact:
        return None
    notices = [
        (f, f.payload)
        for f in facts
        if isinstance(f.payload, NotificationReceived)
        and not isinstance(f.payload, CorrectionRecorded)  # it reshapes the past it corrects
    ]
    if len(notices) != len(facts):
        return None
    if (
        snapshot.observed
        and _amount_unknown(snapshot.last_state)
        and any(fact.event.type in PAYMENT_NOTIFICATION_TYPES for fact in facts)
    ):
        return None
    running = _Running.resumed(snapshot)
    # Every earlier fact is at or before each new state's instant, so each new state's position
    # is the highest of theirs and of the new facts up to its instant.
    running.at_positions(facts, snapshot.highest_position)
    states = [snapshot.last_state]
    states += [running.notified(fact, notice) for fact, notice in notices]
    result = _merged_per_instant(states)
    return result, running.fold_snapshot(result[-1], facts)


def _amount_unknown(state: InvoiceState) -> bool:
    """Some payment or collection of the invoice has no known amount."""
    return any(collection.amount is None for collection in state.collections) or any(
        payment.amount is None for payment in state.payments
    )


def _invoice_facts(events: Iterable[RecordedEvent]) -> list[_Fact]:
    """The facts about the invoice itself: an erasure says nothing about it (what it erased
    reads as erased in the facts that named the payer)."""
    return [
        fact for fact in map(_Fact.of, events) if not isinstance(fact.payload, PersonalDataErased)
    ]


def _merged_per_instant(states: list[InvoiceState]) -> list[InvoiceState]:
    """Several facts at one instant: only the last state was ever in force. (Each state names
    the highest store position among the facts up to its instant: ``_Running.at_positions``.)"""
    merged: list[InvoiceState] = []
    for state in states:
        if merged and merged[-1].last_event_at == state.last_event_at:
            merged[-1] = state
        else:
            merged.append(state)
    return merged
