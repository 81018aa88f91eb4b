"""An invoice's state, at every moment, as a pure function of its facts.

Facts are ordered by provider time, ties broken by store position, so any delivery order
gives the same answer. An operator's correction is read in place of the event it corrects,
at that event's time and position. Two kinds of fact weigh differently:

- **Get Invoice Details** (an observation, with its ``invoiceHistory``) is the truth as of
  the moment Cybersource produced it. Up to the latest observation, the invoice's past is
  reconstructed from the provider's history alone: its payments are the ``PAYMENT`` entries
  (and only those), its total is the one observed from the last ``UPDATE`` (or its creation)
  on (updates are allowed only before any payment), its balance at any moment is that total
  less the payments up to then. A payment entry without an amount takes it from the
  Transaction Details API's answer, or from the balance its own notification states, or is
  the one entry left to explain what the observation says was paid; several such entries
  keep their amounts unknown: a split is never guessed. Notifications dated before the
  latest observation are superseded by it.
- **Notifications** after the latest observation are provisional: they show changes at once,
  and the next observation supersedes them; they never restate what it answered. They carry
  no transaction id, so a payment is the balance decrease they report. The total may have
  been updated since it was last stated (updates send no notification), so the first
  payment a notification reports is the balance before less the balance after, labelled
  provisional (as is a total taken from a send's balance) until the next observation; once
  a payment is known the total cannot change, and every later decrease a payment
  notification reports is exact. A send or a reminder folded after a payment may have been
  sent before an update that raised the total (its eventDate strays by minutes), so it
  moves no money.

Money rules that hold at every moment: where total and balance are known, the collections
sum to total - balance (unless several are of unknown amount); PAID means a balance of 0;
unknown stays unknown (None), never 0, and never a guess.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter

from service.domain.events import InvoiceEventType, RecordedEvent
from service.domain.payloads import (
    CorrectionRecorded,
    HistoryEntryRecorded,
    InvoiceObserved,
    NotificationReceived,
    Payload,
    StatedFields,
    TransactionObserved,
    decode,
)

E = InvoiceEventType
ZERO = Decimal(0)


class InvoiceStatus(StrEnum):
    """Cybersource's invoice statuses (one L in CANCELED)."""

    DRAFT = "DRAFT"
    CREATED = "CREATED"
    SENT = "SENT"
    PARTIAL = "PARTIAL"
    PAID = "PAID"
    CANCELED = "CANCELED"
    PENDING = "PENDING"


OPEN_STATUSES = frozenset(
    {InvoiceStatus.CREATED, InvoiceStatus.SENT, InvoiceStatus.PARTIAL, InvoiceStatus.PENDING}
)
FINAL_STATUSES = frozenset({InvoiceStatus.PAID, InvoiceStatus.CANCELED})
# Notifications that say money arrived.
PAYMENT_NOTIFICATION_TYPES = frozenset({E.INVOICE_PAID, E.INVOICE_PARTIALLY_PAID})
# Notifications that can only be sent once money has arrived: the total they are about is
# final, and the balance they state is one that payments alone have lowered since.
AFTER_PAYMENT_NOTIFICATION_TYPES = PAYMENT_NOTIFICATION_TYPES | {E.INVOICE_PARTIAL_RESENT}
REMINDER_NOTIFICATION_TYPES = frozenset({E.INVOICE_REMINDER_SENT, E.INVOICE_OVERDUE_REMINDER_SENT})
# How far a notification's eventDate may stray from the history entry of the same payment:
# Cybersource stamps them independently, milliseconds to minutes apart.
NOTIFICATION_LAG_MAX = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Payment:
    transaction_id: str | None
    amount: Decimal | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Collection:
    """Money collected on an invoice at a provider time, counted once."""

    collected_at: datetime
    amount: Decimal | None  # None: money arrived, but how much is not known yet
    # Inferred from notifications alone (the balances before and after it), not stated by
    # Cybersource: reported apart from confirmed money until an answer confirms or corrects it.
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceState:
    invoice_number: str
    organization_id: str = ""
    status: InvoiceStatus | None = None
    currency: str | None = None
    total_amount: Decimal | None = None
    balance_amount: Decimal | None = None
    due_date: date | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    payments: tuple[Payment, ...] = ()
    collections: tuple[Collection, ...] = ()
    last_event_at: datetime | None = None
    last_position: int = 0
    # Figures inferred from notifications alone (a total from a send's balance, a balance from
    # such a total): the best figure, labelled, until Cybersource's answer confirms it.
    total_provisional: bool = False
    balance_provisional: bool = False

    @property
    def provisional_amounts(self) -> tuple[str, ...]:
        """The names of the amounts that are provisional (paid_amount is when either of the
        two it is the difference of is)."""
        names = []
        if self.total_provisional and self.total_amount is not None:
            names.append("total_amount")
        if self.balance_provisional and self.balance_amount is not None:
            names.append("balance_amount")
        if names and self.paid_amount is not None:
            names.append("paid_amount")
        return tuple(names)

    @property
    def paid_amount(self) -> Decimal | None:
        if self.total_amount is None or self.balance_amount is None:
            return None
        return self.total_amount - self.balance_amount

    @property
    def collected_amount(self) -> Decimal | None:
        """The sum of the collections, or None while one of them is of unknown amount."""
        if any(collection.amount is None for collection in self.collections):
            return None
        return sum((c.amount for c in self.collections if c.amount is not None), ZERO)


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


@dataclass(frozen=True, slots=True)
class FoldSnapshot:
    """Where an invoice's fold stands after the facts folded so far: enough to fold later
    notifications onto it without its earlier facts.

    The running figures are ``last_state``'s (every step ends with a snapshot of them);
    what the states do not show is kept beside it.
    """

    last_state: InvoiceState
    last_fact: tuple[datetime, int]  # the latest fact folded, in the fold's order
    highest_position: int  # the highest store position among the facts folded
    observed: bool
    matched_payments: frozenset[int]


def folded_history(
    invoice_number: str, events: Iterable[RecordedEvent], organization_id: str = ""
) -> tuple[list[InvoiceState], FoldSnapshot | None]:
    """``state_history``, and a snapshot to continue it from (None when the facts establish
    nothing yet, so that a later fact must be folded with them all)."""
    facts = _corrected(sorted(map(_Fact.of, events), key=_FACT_ORDER))
    if not facts:
        return [], None
    running = _Running(invoice_number, organization_id)
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
        return _one_per_instant([running.snapshot(facts[0].moment)], facts), None
    history = _one_per_instant(states, facts)
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
    running = _Running.resumed(snapshot)
    states = [snapshot.last_state]
    states += [running.notified(fact, notice) for fact, notice in notices]
    # Every earlier fact is at or before each new state's instant, so each new state's position
    # is the highest of theirs and of the new facts up to its instant.
    moments = [fact.key[0] for fact in facts]
    highest = list(accumulate((fact.key[1] for fact in facts), max))
    result = []
    for state in _merged_per_instant(states):
        if state is snapshot.last_state:
            result.append(state)
            continue
        assert state.last_event_at is not None
        seen = bisect.bisect_right(moments, state.last_event_at)
        position = max(snapshot.highest_position, highest[seen - 1] if seen else 0)
        result.append(_at_position(state, position))
    return result, running.fold_snapshot(result[-1], facts, snapshot.highest_position)


@dataclass(frozen=True, slots=True)
class _Fact:
    event: RecordedEvent
    payload: Payload
    # (provider time, store position), computed once: the fold sorts and compares by it often.
    key: tuple[datetime, int]

    @classmethod
    def of(cls, event: RecordedEvent) -> _Fact:
        return cls(event, decode(event), (event.occurred_at, event.position))

    def order(self) -> tuple[datetime, int]:
        return self.key

    @property
    def moment(self) -> datetime:
        return self.event.occurred_at


_FACT_ORDER = attrgetter("key")  # _Fact.order without a method call per comparison key


def corrected_by(events: Iterable[RecordedEvent]) -> dict[int, int]:
    """For the audit trail: each event an operator's correction replaces (a first-hand fact,
    or an earlier correction of it), by position, and the position of the correction that
    stands in its place."""
    payloads = {event.position: decode(event) for event in events}
    replaced = {}
    for target, (standing, corrections) in _corrections_by_target(payloads).items():
        replaced[target] = standing
        replaced.update((c, standing) for c in corrections if c != standing)
    return replaced


def _corrections_by_target(payloads: Mapping[int, Payload]) -> dict[int, tuple[int, list[int]]]:
    """For each corrected first-hand event (by position): the correction that stands (the
    latest recorded) and every correction of it. A correction of a correction corrects the
    event the first one corrected; a correction whose event is not among ``payloads`` is
    left out."""
    by_target: dict[int, tuple[int, list[int]]] = {}
    for position in sorted(payloads):
        if not isinstance(payloads[position], CorrectionRecorded):
            continue
        target = _corrected_position(position, payloads)
        if target is not None:
            earlier = by_target.get(target, (position, []))[1]
            by_target[target] = (position, [*earlier, position])
    return by_target


def _corrected_position(position: int, payloads: Mapping[int, Payload]) -> int | None:
    visited = {position}
    payload = payloads[position]
    while isinstance(payload, CorrectionRecorded):
        target = payload.corrects_position
        if target is None or target in visited or target not in payloads:
            return None
        visited.add(target)
        position, payload = target, payloads[target]
    return position


def _corrected(facts: list[_Fact]) -> list[_Fact]:
    """The facts as the operator's corrections say they should have been received: each
    corrected event is read as its standing correction says, at its own place in the fold
    (its provider time and store position), and no correction is folded again on its own.
    A correction whose event is not among ``facts`` is folded as the notification it
    states."""
    if not any(isinstance(fact.payload, CorrectionRecorded) for fact in facts):
        return facts
    by_position = {fact.key[1]: fact for fact in facts}
    by_target = _corrections_by_target({p: fact.payload for p, fact in by_position.items()})
    applied = {c for _, corrections in by_target.values() for c in corrections}
    result = []
    for fact in facts:
        position = fact.key[1]
        if position in applied:
            continue
        if position in by_target:
            standing = by_position[by_target[position][0]]
            assert isinstance(standing.payload, CorrectionRecorded)
            fact = _Fact(
                replace(fact.event, type=standing.event.type),
                standing.payload.corrected_fact(),
                fact.key,
            )
        result.append(fact)
    return result


def _one_per_instant(states: list[InvoiceState], facts: Sequence[_Fact]) -> list[InvoiceState]:
    """Several facts at one instant: only the last state was ever in force. Each state also
    names the highest store position among the facts up to its instant."""
    merged = _merged_per_instant(states)
    moments = [fact.key[0] for fact in facts]  # facts are in provider-time order
    highest = list(accumulate((fact.key[1] for fact in facts), max))
    result = []
    for state in merged:
        assert state.last_event_at is not None
        seen = bisect.bisect_right(moments, state.last_event_at)
        result.append(_at_position(state, highest[seen - 1] if seen else 0))
    return result


def _merged_per_instant(states: list[InvoiceState]) -> list[InvoiceState]:
    merged: list[InvoiceState] = []
    for state in states:
        if merged and merged[-1].last_event_at == state.last_event_at:
            merged[-1] = state
        else:
            merged.append(state)
    return merged


def _at_position(state: InvoiceState, position: int) -> InvoiceState:
    """``replace(state, last_position=position)``, without ``replace``'s per-field
    introspection: it runs once per state of every invoice a projector folds."""
    return InvoiceState(
        state.invoice_number, state.organization_id, state.status, state.currency,
        state.total_amount, state.balance_amount, state.due_date, state.customer_name,
        state.customer_email, state.payments, state.collections, state.last_event_at, position,
        state.total_provisional, state.balance_provisional,
    )  # fmt: skip


@dataclass
class _Running:
    """The invoice as the facts applied so far leave it; each step returns a snapshot."""

    invoice_number: str
    organization_id: str
    status: InvoiceStatus | None = None
    currency: str | None = None
    total: Decimal | None = None
    balance: Decimal | None = None
    due_date: date | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    payments: list[Payment] = field(default_factory=list)
    collections: list[Collection] = field(default_factory=list)
    # Whether Cybersource has been asked about the invoice (its answer shaped this state).
    observed: bool = False
    # History payments a notification has been recognised as (by their index in payments).
    matched_payments: set[int] = field(default_factory=set)
    # Whether total or balance was inferred from notifications alone (see InvoiceState).
    total_provisional: bool = False
    balance_provisional: bool = False

    @classmethod
    def resumed(cls, snapshot: FoldSnapshot) -> _Running:
        state = snapshot.last_state
        return cls(
            state.invoice_number, state.organization_id, state.status, state.currency,
            state.total_amount, state.balance_amount, state.due_date, state.customer_name,
            state.customer_email, list(state.payments), list(state.collections),
            snapshot.observed, set(snapshot.matched_payments), state.total_provisional,
            state.balance_provisional,
        )  # fmt: skip

    def fold_snapshot(
        self, last_state: InvoiceState, facts: Sequence[_Fact], highest_before: int = 0
    ) -> FoldSnapshot:
        return FoldSnapshot(
            last_state=last_state,
            last_fact=facts[-1].key,
            highest_position=max(highest_before, max(fact.key[1] for fact in facts)),
            observed=self.observed,
            matched_payments=frozenset(self.matched_payments),
        )

    # --- shared -----------------------------------------------------------------------------

    def snapshot(self, moment: datetime) -> InvoiceState:
        return InvoiceState(
            invoice_number=self.invoice_number,
            organization_id=self.organization_id,
            status=self.status,
            currency=self.currency,
            total_amount=self.total,
            balance_amount=self.balance,
            due_date=self.due_date,
            customer_name=self.customer_name,
            customer_email=self.customer_email,
            payments=tuple(self.payments),
            collections=tuple(self.collections),
            last_event_at=moment,
            total_provisional=self.total_provisional and self.total is not None,
            balance_provisional=self.balance_provisional and self.balance is not None,
        )

    def describe(self, stated: StatedFields) -> None:
        if stated.customer_name is not None:
            self.customer_name = stated.customer_name
        if stated.customer_email is not None:
            self.customer_email = stated.customer_email

    @property
    def paid_before(self) -> bool:
        return bool(self.collections) or self.status in (InvoiceStatus.PARTIAL, InvoiceStatus.PAID)

    def collect(self, moment: datetime, amount: Decimal | None, provisional: bool = False) -> None:
        if amount is None or amount != 0:
            self.collections.append(Collection(moment, amount, provisional and amount is not None))

    def state_total(self, total: Decimal | None, *, provisional: bool) -> None:
        self.total, self.total_provisional = total, provisional

    def state_balance(self, balance: Decimal | None, *, provisional: bool = False) -> None:
        self.balance, self.balance_provisional = balance, provisional

    def settle_money(self, moment: datetime) -> None:
        """Make the money rules hold: PAID owes nothing, and where total and balance are
        known the collections sum to their difference."""
        if self.status is InvoiceStatus.PAID:
            self.state_balance(ZERO)
        if self.total is None or self.balance is None:
            return
        known = sum((c.amount for c in self.collections if c.amount is not None), ZERO)
        missing = self.total - self.balance - known
        provisional = self.total_provisional or self.balance_provisional
        if missing < 0:
            # More was collected than total and balance leave room for: the facts contradict
            # each other about the total, which stays unknown until Cybersource is asked.
            self.state_total(None, provisional=False)
            return
        unknown = [i for i, c in enumerate(self.collections) if c.amount is None]
        if len(unknown) == 1:
            # Now that total and balance are known, so is what the unknown collection was.
            (index,) = unknown
            self.collections[index] = replace(
                self.collections[index], amount=missing, provisional=provisional
            )
            self.collections = [c for c in self.collections if c.amount != 0]
        elif not unknown and missing > 0:
            # Money the facts show arrived without saying when.
            self.collect(moment, missing, provisional)
        # Several collections of unknown amount share what is missing: which one was how much
        # stays unknown (never a guess) until a fact attributes it.

    # --- provisional: notifications -----------------------------------------------------------

    def notified(self, fact: _Fact, notice: NotificationReceived) -> InvoiceState:
        stated, moment, event_type = notice.stated, fact.moment, fact.event.type
        # What Cybersource answered stands until it answers again: a notification (perhaps
        # stamped late) fills in only what the ledger does not know. The payer it names is
        # not the answer's when the answer names none (an update removed it).
        if not self.observed:
            self.describe(stated)
        if stated.currency is not None and (self.currency is None or not self.observed):
            self.currency = stated.currency
        if stated.due_date is not None and (self.due_date is None or not self.observed):
            self.due_date = stated.due_date
        previous = self.status
        paid_before = self.paid_before
        self.status = next_status(previous, event_type, has_payments=paid_before)
        if previous in FINAL_STATUSES:
            return self.snapshot(moment)  # a settled invoice's money no longer moves
        balance = ZERO if event_type == E.INVOICE_PAID else stated.balance_amount
        reported = notice.payment.amount if notice.payment else None
        if paid_before:
            self._later_payment(moment, event_type, stated, balance, reported)
        elif event_type in AFTER_PAYMENT_NOTIFICATION_TYPES:
            self._first_money(moment, stated, balance, reported)
        else:
            self._before_money(moment, event_type, stated, balance)
        if event_type in PAYMENT_NOTIFICATION_TYPES:
            self.payments.append(Payment(None, reported, moment))
        self.settle_money(moment)
        return self.snapshot(moment)

    def _before_money(
        self, moment: datetime, event_type: str, stated: StatedFields, balance: Decimal | None
    ) -> None:
        """A send, reminder or cancel while no money is known. Its balance is the total as
        it stood (provisional: an update notifies nobody) unless Cybersource has answered:
        the answer's total stands until it answers again. A reminder owing less than the
        known balance reveals a payment whose notification was lost, or an update; which,
        only Cybersource can tell: the best figure is a payment, labelled provisional."""
        if stated.total_amount is not None and not self.observed:
            self.state_total(stated.total_amount, provisional=False)
            self.state_balance(balance if balance is not None else stated.total_amount)
            return
        if balance is None:
            return
        prior = self.balance
        if event_type in REMINDER_NOTIFICATION_TYPES and prior is not None and balance < prior:
            self.collect(moment, prior - balance, provisional=True)
            self.state_balance(balance)
            return
        if not self.observed and balance != self.total:
            self.state_total(balance, provisional=True)
            self.state_balance(balance)

    def _first_money(
        self,
        moment: datetime,
        stated: StatedFields,
        balance: Decimal | None,
        reported: Decimal | None,
    ) -> None:
        """The first money the ledger hears of. Stated figures are exact (a total with a
        balance, or a balance with the amount paid); a balance alone is compared with the
        balance known before, and the difference is a payment labelled provisional: the
        total may have been updated since it was known (updates notify nobody)."""
        prior = self.balance
        total_stated = stated.total_amount is not None and not self.observed
        if total_stated:
            self.state_total(stated.total_amount, provisional=False)
        if balance is not None and reported is not None:
            if not total_stated and not self.observed:
                self.state_total(balance + reported, provisional=False)
            self.state_balance(balance)
            self.collect(moment, reported)
            return
        if balance is not None:
            self.state_balance(balance)
            if total_stated:
                return  # total and balance stated together: the money is their difference
            if prior is not None and prior > balance:
                self.collect(moment, prior - balance, provisional=True)
                return
            # The total was raised since it was known, or was never known: how much was paid
            # stays unknown until Cybersource is asked.
            self.state_total(None, provisional=False)
            self.collect(moment, None)
            return
        self.collect(moment, reported)
        if reported is not None and prior is not None and prior >= reported:
            self.state_balance(prior - reported, provisional=True)
        else:
            self.state_balance(None)

    def _later_payment(
        self,
        moment: datetime,
        event_type: str,
        stated: StatedFields,
        balance: Decimal | None,
        reported: Decimal | None,
    ) -> None:
        """A payment is known, so the total is final and every decrease between balances
        stated after a payment is exact money.

        A send or a reminder may be one sent before the first payment and dated after it
        (eventDates stray by minutes): its balance is the total as it stood then, and an
        update since (which notifies nobody) may have raised the total above it. So it
        moves neither the total nor the balance nor any money: a payment it would reveal
        (one whose notification was lost) is counted by the next payment notification's
        decrease, or by Cybersource's answer."""
        if event_type not in AFTER_PAYMENT_NOTIFICATION_TYPES:
            return
        if self.total is None and stated.total_amount is not None:
            self.state_total(stated.total_amount, provisional=False)
        prior = self.balance
        provisional = self.balance_provisional
        if balance is not None:
            if prior is None or balance < prior:
                if prior is not None:
                    self.collect(moment, prior - balance, provisional)
                self.state_balance(balance)
            # A balance at or above the known one repeats money already counted (a late or
            # duplicated notification): nothing new arrived.
            return
        if event_type not in PAYMENT_NOTIFICATION_TYPES:
            return
        if reported is not None and self._already_observed(moment, reported):
            return
        if reported is not None and prior is not None:
            reported = min(reported, prior)
            self.state_balance(prior - reported, provisional=provisional)
        else:
            self.state_balance(None)
        self.collect(moment, reported, provisional)

    def _already_observed(self, moment: datetime, amount: Decimal) -> bool:
        """A notification naming only an amount is the same money as a history payment of
        that amount close to it in time, unless another notification already matched it
        (before or after Cybersource's answer)."""
        for index, payment in enumerate(self.payments):
            if (
                index not in self.matched_payments
                and payment.transaction_id is not None
                and payment.amount == amount
                and abs(payment.received_at - moment) <= NOTIFICATION_LAG_MAX
            ):
                self.matched_payments.add(index)
                return True
        return False


class _ProviderPast:
    """The invoice's past up to its latest observation, from the provider's own history."""

    def __init__(
        self, running: _Running, facts: Sequence[_Fact], horizon: tuple[datetime, int]
    ) -> None:
        self._running = running
        self._horizon = horizon
        known = [fact for fact in facts if fact.order() <= horizon]
        self._observations = [f for f in known if isinstance(f.payload, InvoiceObserved)]
        self._notifications = [f for f in known if isinstance(f.payload, NotificationReceived)]
        self._entries = _distinct_entries(
            f for f in known if isinstance(f.payload, HistoryEntryRecorded)
        )
        self._updates = sorted(
            fact.moment for fact in self._entries if _entry(fact).history_event == "UPDATE"
        )
        self._payments = [f for f in self._entries if _entry(f).history_event == "PAYMENT"]
        self._transactions = {
            f.payload.transaction_id: f.payload.amount
            for f in facts
            if isinstance(f.payload, TransactionObserved) and f.payload.amount is not None
        }
        # Every payment notification with a balance, whichever side of the answer it is dated:
        # the balance it states may tell what the history entry it reports collected.
        self._unpaired = {  # by store position, in time order
            f.key[1]: f for f in facts
            if f.event.type in PAYMENT_NOTIFICATION_TYPES
            and isinstance(f.payload, NotificationReceived) and _balance_after(f) is not None
        }  # fmt: skip
        self._paired: dict[int, _Fact] = {}  # entry position -> the notification reporting it
        self._amounts, self._adjustments, self._settling = self._payment_amounts()
        # Entries whose notification the answer already supersedes: a later notification
        # cannot be the same money.
        self._claimed = {
            position for position, notice in self._paired.items() if notice.order() <= horizon
        }
        paired = {notice.key[1] for notice in self._paired.values()}
        self._claim_by_amount([f for f in self._notifications if f.event.type in
                               PAYMENT_NOTIFICATION_TYPES and f.key[1] not in paired])

    def _claim_by_amount(self, notices: Sequence[_Fact]) -> None:
        """Notifications before the answer that name the amount paid claim the history
        payment of that amount nearest them in time."""
        for notice in notices:
            assert isinstance(notice.payload, NotificationReceived)
            named = notice.payload.payment.amount if notice.payload.payment else None
            if named is None:
                continue
            candidates = [
                fact for fact in self._payments
                if self._amounts.get(fact.event.position) == named
                and fact.event.position not in self._claimed
                and abs(fact.moment - notice.moment) <= NOTIFICATION_LAG_MAX
            ]  # fmt: skip
            if candidates:
                nearest = min(candidates, key=lambda fact: abs(fact.moment - notice.moment))
                self._claimed.add(nearest.event.position)

    def states(self) -> list[InvoiceState]:
        running = self._running
        points = sorted([*self._entries, *self._observations], key=_Fact.order)
        states = []
        described = 0  # notifications whose payer details have been taken, in time order
        for fact in points:
            # Payer details are never in the history; the notifications up to now tell them.
            while (
                described < len(self._notifications)
                and self._notifications[described].order() <= fact.order()
            ):
                running.describe(self._notifications[described].payload.stated)  # type: ignore[union-attr]
                described += 1
            segment = self._segment_values(fact.moment)
            running.state_total(segment.total_amount, provisional=False)
            running.currency = segment.currency
            running.due_date = segment.due_date
            if isinstance(fact.payload, InvoiceObserved):
                self._observed(fact, fact.payload)
                balance = self._balance()
                # Which payment collected how much may be unknown; what is owed is not.
                running.state_balance(
                    fact.payload.stated.balance_amount if balance is None else balance
                )
            else:
                self._history_entry(fact, _entry(fact))
                running.state_balance(self._balance())
            running.settle_money(fact.moment)
            states.append(running.snapshot(fact.moment))
        return states

    def _observed(self, fact: _Fact, observed: InvoiceObserved) -> None:
        running = self._running
        running.observed = True
        # The answer is the invoice as it stands: a field it leaves out (an update removed
        # it) is no longer the invoice's.
        running.customer_name = observed.stated.customer_name
        running.customer_email = observed.stated.customer_email
        if observed.status is not None and observed.status in InvoiceStatus.__members__:
            running.status = InvoiceStatus(observed.status)
        for moment, amount in self._adjustments.get(fact.event.position, ()):
            running.collect(moment, amount)

    def _history_entry(self, fact: _Fact, entry: HistoryEntryRecorded) -> None:
        running = self._running
        current = running.status
        match entry.history_event:
            case "DRAFT":
                running.status = InvoiceStatus.DRAFT if current is None else current
            case "CREATE":
                if current in (None, InvoiceStatus.DRAFT):
                    running.status = InvoiceStatus.CREATED
            case "SEND" | "RESEND" | "REMINDER":
                if current in (None, InvoiceStatus.DRAFT, InvoiceStatus.CREATED):
                    running.status = InvoiceStatus.SENT
            case "PAYMENT":
                position = fact.event.position
                if position not in self._amounts:
                    return  # another entry of a transaction already counted
                amount = self._amounts[position]
                transaction = entry.transaction.transaction_id if entry.transaction else None
                running.payments.append(Payment(transaction, amount, fact.moment))
                if position in self._claimed:
                    running.matched_payments.add(len(running.payments) - 1)
                running.collect(fact.moment, amount)
                balance = self._balance()
                paid_in_full = position in self._settling or (balance is not None and balance <= 0)
                running.status = InvoiceStatus.PAID if paid_in_full else InvoiceStatus.PARTIAL
            case "PENDING":
                if current not in FINAL_STATUSES:
                    running.status = InvoiceStatus.PENDING
            case "REJECTED":
                # A rejected review returns the invoice to SENT, as Cybersource documents it,
                # even after an earlier partial payment; its next answer says otherwise if so.
                if current is InvoiceStatus.PENDING:
                    running.status = InvoiceStatus.SENT
            case "CANCEL":
                if current is not InvoiceStatus.PAID:
                    running.status = InvoiceStatus.CANCELED
            case _:
                pass  # UPDATE and entries the ledger does not model change no status

    def _balance(self) -> Decimal | None:
        running = self._running
        if running.total is None or any(c.amount is None for c in running.collections):
            return None
        return running.total - sum((c.amount or ZERO for c in running.collections), ZERO)

    # --- totals along the history ----------------------------------------------------------

    def _segment_values(self, moment: datetime) -> StatedFields:
        """Total, currency and due date in force at ``moment``: an update (allowed only
        before payment) may change them, so each stretch between updates takes the values
        stated within it; the last stretch takes the latest observation's."""
        segment = bisect.bisect_right(self._updates, moment)
        start = self._updates[segment - 1] if segment else None
        end = self._updates[segment] if segment < len(self._updates) else None

        def within(fact: _Fact) -> bool:
            return (start is None or fact.moment >= start) and (end is None or fact.moment < end)

        sources = [f for f in self._observations if within(f)][::-1]
        sources += [f for f in self._notifications if within(f)][::-1]
        total = currency = due = None
        for fact in sources:
            stated = fact.payload.stated  # type: ignore[union-attr]
            total = total if total is not None else stated.total_amount
            if (
                total is None
                and isinstance(fact.payload, NotificationReceived)
                and fact.event.type not in PAYMENT_NOTIFICATION_TYPES
            ):
                total = stated.balance_amount  # before payment, the balance is the total
            currency = currency or stated.currency
            due = due or stated.due_date
        return StatedFields(currency=currency, total_amount=total, due_date=due)

    # --- payments without amounts ----------------------------------------------------------

    def _payment_amounts(
        self,
    ) -> tuple[dict[int, Decimal | None], dict[int, list[tuple[datetime, Decimal]]], set[int]]:
        """Each PAYMENT entry's amount (by position), what no entry can explain (collected at
        the observation that shows it), and the entries that paid the invoice in full.

        Where the history leaves an amount out, the sources that can attribute it are used in
        this order: the Transaction Details API's answer for its transaction; the balances the
        payment notifications matching the entries in time state; and, for the one entry
        left, what the observed paid amount (total - balance) still needs. Several entries
        left keep their amounts unknown: a split is never guessed."""
        amounts: dict[int, Decimal | None] = {}
        seen: set[str] = set()
        for fact in self._payments:
            transaction = _entry(fact).transaction
            transaction_id = transaction.transaction_id if transaction else None
            if transaction_id:
                if transaction_id in seen:
                    continue  # another entry of a transaction already counted
                seen.add(transaction_id)
            amount = transaction.amount if transaction else None
            if amount is None and transaction_id:
                amount = self._transactions.get(transaction_id)
            amounts[fact.event.position] = amount
        adjustments: dict[int, list[tuple[datetime, Decimal]]] = {}
        settling: set[int] = set()
        paid_so_far = ZERO
        remaining = [f for f in self._payments if f.event.position in amounts]
        for anchor in self._observations:
            observed = anchor.payload
            assert isinstance(observed, InvoiceObserved)
            total, balance = observed.stated.total_amount, observed.stated.balance_amount
            if total is None or balance is None:
                continue
            due = [f for f in remaining if f.order() <= anchor.order()]
            remaining = [f for f in remaining if f.order() > anchor.order()]
            if due and observed.status == InvoiceStatus.PAID:
                settling.add(due[-1].event.position)
            paid_since = total - balance - paid_so_far
            self._attribute(due, amounts, total - paid_so_far, paid_since)
            missing = paid_since - sum((amounts[f.event.position] or ZERO for f in due), ZERO)
            unknown = [f.event.position for f in due if amounts[f.event.position] is None]
            if len(unknown) == 1 or (unknown and missing <= 0):
                for position in unknown:
                    share = max(missing, ZERO)
                    amounts[position] = share
                    missing -= share
            elif unknown:
                missing = ZERO  # the entries left share it; which paid what is unknown
            if missing != 0:
                adjustments.setdefault(anchor.event.position, []).append((anchor.moment, missing))
            paid_so_far = total - balance
        return amounts, adjustments, settling

    def _attribute(
        self,
        due: Sequence[_Fact],
        amounts: dict[int, Decimal | None],
        opening: Decimal,
        paid_since: Decimal,
    ) -> None:
        """Amounts for ``due`` entries without one, from the balances payment notifications
        state: an entry collected the balance before it less the balance after it.

        A notification is taken as an entry's only where its balance fits no other entry
        within ``NOTIFICATION_LAG_MAX`` of its eventDate: the balance after each entry lies
        between what the fixed balances around it and the amounts between allow (every
        payment is more than nothing). Kept only if every amount found is positive."""
        count = len(due)
        known = [amounts[fact.event.position] for fact in due]
        moments = [fact.moment for fact in due]  # in time order
        fixed = {0: opening, count: opening - paid_since}  # balance after the i-th entry
        unknown = sum(1 for amount in known if amount is None)
        for _ in range(unknown + 1):  # each pass fixes one more balance, or ends
            balances = _chained_balances(known, fixed)
            if not self._pair_notices(due, moments, known, balances, fixed):
                break
        balances = _chained_balances(known, fixed)
        attributed = {}
        for index, fact in enumerate(due, 1):
            before, after = balances[index - 1], balances[index]
            if known[index - 1] is None and before is not None and after is not None:
                if after >= before:
                    return  # the notifications contradict the answer: they attribute nothing
                attributed[fact.event.position] = before - after
        amounts.update(attributed)

    def _pair_notices(
        self,
        due: Sequence[_Fact],
        moments: list[datetime],
        known: list[Decimal | None],
        balances: list[Decimal | None],
        fixed: dict[int, Decimal],
    ) -> bool:
        """Pairs each unpaired notification whose balance fits exactly one entry near it.
        Whether one of them fixed a balance not known before (the others' fit may change)."""
        for position, notice in list(self._unpaired.items()):
            value = _balance_after(notice)
            assert value is not None
            # Only the entries within the lag of its eventDate can be the one it reports.
            start = bisect.bisect_left(moments, notice.moment - NOTIFICATION_LAG_MAX)
            end = bisect.bisect_right(moments, notice.moment + NOTIFICATION_LAG_MAX)
            fits = [
                index for index in range(start + 1, end + 1)
                if _balance_fits(index, value, known, balances)
            ]  # fmt: skip
            if len(fits) != 1:
                continue
            (index,) = fits
            del self._unpaired[position]
            self._paired[due[index - 1].event.position] = notice
            if balances[index] is None:
                fixed[index] = value
                return True
        return False


def _balance_after(notice: _Fact) -> Decimal | None:
    """The balance a payment notification says the invoice owed after the payment."""
    if notice.event.type == E.INVOICE_PAID:
        return ZERO
    assert isinstance(notice.payload, NotificationReceived)
    return notice.payload.stated.balance_amount


def _chained_balances(
    amounts: Sequence[Decimal | None], fixed: dict[int, Decimal]
) -> list[Decimal | None]:
    """The balance after each entry (index 0: before the first), where the fixed balances
    and the known amounts between tell it."""
    balances: list[Decimal | None] = [fixed.get(index) for index in range(len(amounts) + 1)]
    for index, amount in enumerate(amounts, 1):
        before = balances[index - 1]
        if balances[index] is None and before is not None and amount is not None:
            balances[index] = before - amount
    for index in range(len(amounts) - 1, -1, -1):
        after, amount = balances[index + 1], amounts[index]
        if balances[index] is None and after is not None and amount is not None:
            balances[index] = after + amount
    return balances


def _balance_fits(
    index: int, value: Decimal, amounts: Sequence[Decimal | None], balances: list[Decimal | None]
) -> bool:
    """Whether ``value`` can be the balance after entry ``index``: the one known, or strictly
    between the nearest known balances around it less (plus) the known amounts between."""
    known = balances[index]
    if known is not None:
        return value == known
    left = max(i for i in range(index) if balances[i] is not None)
    right = min(i for i in range(index + 1, len(balances)) if balances[i] is not None)
    highest = balances[left] - sum((a or ZERO for a in amounts[left:index]), ZERO)  # type: ignore[operator]
    lowest = balances[right] + sum((a or ZERO for a in amounts[index:right]), ZERO)  # type: ignore[operator]
    return lowest < value < highest


def _entry(fact: _Fact) -> HistoryEntryRecorded:
    assert isinstance(fact.payload, HistoryEntryRecorded)
    return fact.payload


def _distinct_entries(facts: Iterable[_Fact]) -> list[_Fact]:
    """One fact per history entry, however often (and under whichever key version) it was
    recorded: entries are identified by event, date, transaction and occurrence."""
    chosen: dict[tuple[str, datetime, str | None, int], _Fact] = {}
    for fact in sorted(facts, key=_Fact.order):
        entry = _entry(fact)
        transaction = entry.transaction.transaction_id if entry.transaction else None
        identity = (entry.history_event, fact.moment, transaction, entry.occurrence or 0)
        current = chosen.get(identity)
        # A fact that knows its occurrence is preferred to a version 1 copy of the same entry.
        if current is None or (_entry(current).occurrence is None and entry.occurrence is not None):
            chosen[identity] = fact
    return sorted(chosen.values(), key=_Fact.order)


def next_status(
    current: InvoiceStatus | None, event_type: str, *, has_payments: bool
) -> InvoiceStatus | None:
    """The status a notification leads to."""
    match event_type:
        case E.INVOICE_SENT | E.INVOICE_REMINDER_SENT | E.INVOICE_OVERDUE_REMINDER_SENT:
            # Sending never reopens a settled invoice and a resend keeps PARTIAL/PENDING; an
            # invoice first heard of through a reminder was sent, so it is open.
            reopenable = (None, InvoiceStatus.DRAFT, InvoiceStatus.CREATED)
            return InvoiceStatus.SENT if current in reopenable else current
        case E.INVOICE_PARTIAL_RESENT | E.INVOICE_PARTIALLY_PAID:
            return current if current in FINAL_STATUSES else InvoiceStatus.PARTIAL
        case E.INVOICE_PAID:
            return current if current is InvoiceStatus.CANCELED else InvoiceStatus.PAID
        case E.INVOICE_CANCELED:
            return current if current is InvoiceStatus.PAID else InvoiceStatus.CANCELED
        case _:
            return current
