"""An invoice's state, at every moment, as a pure function of its facts.

Facts are ordered by provider time, ties broken by store position, so any delivery order
gives the same answer. Two kinds of fact weigh differently:

- **Get Invoice Details** (an observation, with its ``invoiceHistory``) is the truth as of
  the moment Cybersource produced it. Up to the latest observation, the invoice's past is
  reconstructed from the provider's history alone: its payments are the ``PAYMENT`` entries
  (and only those), its total is the one observed from the last ``UPDATE`` (or its creation)
  on (updates are allowed only before any payment), its balance at any moment is that total
  less the payments up to then. Notifications dated before the latest observation are
  superseded by it.
- **Notifications** after the latest observation are provisional: they show changes at once,
  and the next observation supersedes them. They carry no transaction id, so a payment is
  the balance decrease they report. The total may have been updated since it was last
  stated (updates send no notification), so the first payment a notification reports leaves
  the total, and the amount collected, unknown until the next observation; once a payment
  is known the total cannot change, and every later decrease a payment notification reports
  is exact. A send or a reminder folded after a payment may have been sent before an update
  that raised the total (its eventDate strays by minutes), so it moves no money.

Money rules that hold at every moment: where total and balance are known, the collections
sum to total - balance; PAID means a balance of 0; unknown stays unknown (None), never 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter

from service.domain.events import InvoiceEventType, RecordedEvent
from service.domain.payloads import (
    HistoryEntryRecorded,
    InvoiceObserved,
    NotificationReceived,
    Payload,
    StatedFields,
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
    facts = sorted(map(_Fact.of, events), key=_FACT_ORDER)
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
    notices = [(f, f.payload) for f in facts if isinstance(f.payload, NotificationReceived)]
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

    @classmethod
    def resumed(cls, snapshot: FoldSnapshot) -> _Running:
        state = snapshot.last_state
        return cls(
            state.invoice_number, state.organization_id, state.status, state.currency,
            state.total_amount, state.balance_amount, state.due_date, state.customer_name,
            state.customer_email, list(state.payments), list(state.collections),
            snapshot.observed, set(snapshot.matched_payments),
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
        )

    def describe(self, stated: StatedFields) -> None:
        if stated.customer_name is not None:
            self.customer_name = stated.customer_name
        if stated.customer_email is not None:
            self.customer_email = stated.customer_email

    @property
    def paid_before(self) -> bool:
        return bool(self.collections) or self.status in (InvoiceStatus.PARTIAL, InvoiceStatus.PAID)

    def collect(self, moment: datetime, amount: Decimal | None) -> None:
        if amount is None or amount != 0:
            self.collections.append(Collection(moment, amount))

    def settle_money(self, moment: datetime) -> None:
        """Make the money rules hold: PAID owes nothing, and where total and balance are
        known the collections sum to their difference."""
        if self.status is InvoiceStatus.PAID:
            self.balance = ZERO
        if self.total is None or self.balance is None:
            return
        known = sum((c.amount for c in self.collections if c.amount is not None), ZERO)
        missing = self.total - self.balance - known
        if missing < 0:
            # More was collected than total and balance leave room for: the facts contradict
            # each other about the total, which stays unknown until Cybersource is asked.
            self.total = None
            return
        unknown = [i for i, c in enumerate(self.collections) if c.amount is None]
        if unknown:
            # Now that total and balance are known, so is what the unknown collections were.
            first, *others = unknown
            self.collections[first] = replace(self.collections[first], amount=missing)
            for index in reversed(others):
                del self.collections[index]
            self.collections = [c for c in self.collections if c.amount != 0]
        elif missing > 0:
            self.collect(moment, missing)  # money the facts show arrived without saying when

    # --- provisional: notifications -----------------------------------------------------------

    def notified(self, fact: _Fact, notice: NotificationReceived) -> InvoiceState:
        stated, moment, event_type = notice.stated, fact.moment, fact.event.type
        self.describe(stated)
        # What Cybersource answered stands until it answers again: a notification (perhaps
        # stamped late) fills in only what the ledger does not know.
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
        else:
            self._first_money(moment, event_type, stated, balance, reported)
        if event_type in PAYMENT_NOTIFICATION_TYPES:
            self.payments.append(Payment(None, reported, moment))
        self.settle_money(moment)
        return self.snapshot(moment)

    def _first_money(
        self,
        moment: datetime,
        event_type: str,
        stated: StatedFields,
        balance: Decimal | None,
        reported: Decimal | None,
    ) -> None:
        money_arrived = event_type in PAYMENT_NOTIFICATION_TYPES or (
            event_type == E.INVOICE_PARTIAL_RESENT
        )
        if stated.total_amount is not None:
            # Total and balance stated together are exact, whatever happened before.
            self.total = stated.total_amount
            self.balance = balance if balance is not None else self.total
            return
        if not money_arrived:
            if balance is not None:
                self.total = self.balance = balance  # before any payment, the balance is the total
            return
        if reported is not None and balance is not None:
            self.total, self.balance = balance + reported, balance
            self.collect(moment, reported)
            return
        # The total may have been updated since it was last stated (updates notify nobody):
        # how much was paid is unknown until the provider is asked.
        self.total, self.balance = None, balance
        self.collect(moment, reported)

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
            self.total = stated.total_amount
        prior = self.balance
        if balance is not None:
            if prior is None or balance < prior:
                if prior is not None:
                    self.collect(moment, prior - balance)
                self.balance = balance
            # A balance at or above the known one repeats money already counted (a late or
            # duplicated notification): nothing new arrived.
            return
        if event_type not in PAYMENT_NOTIFICATION_TYPES:
            return
        if reported is not None and self._already_observed(moment, reported):
            return
        if reported is not None and prior is not None:
            reported = min(reported, prior)
            self.balance = prior - reported
        else:
            self.balance = None
        self.collect(moment, reported)

    def _already_observed(self, moment: datetime, amount: Decimal) -> bool:
        """A notification naming only an amount is the same money as a history payment of
        that amount close to it in time, unless another notification already matched it."""
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
        self._amounts, self._adjustments = self._payment_amounts()

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
            running.total = segment.total_amount
            running.currency = segment.currency
            running.due_date = segment.due_date
            if isinstance(fact.payload, InvoiceObserved):
                self._observed(fact, fact.payload)
            else:
                self._history_entry(fact, _entry(fact))
            running.balance = self._balance()
            running.settle_money(fact.moment)
            states.append(running.snapshot(fact.moment))
        return states

    def _observed(self, fact: _Fact, observed: InvoiceObserved) -> None:
        running = self._running
        running.observed = True
        running.describe(observed.stated)
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
                if fact.event.position not in self._amounts:
                    return  # another entry of a transaction already counted
                amount = self._amounts[fact.event.position]
                transaction = entry.transaction.transaction_id if entry.transaction else None
                running.payments.append(Payment(transaction, amount, fact.moment))
                running.collect(fact.moment, amount)
                running.balance = self._balance()
                paid_in_full = running.balance is not None and running.balance <= 0
                running.status = InvoiceStatus.PAID if paid_in_full else InvoiceStatus.PARTIAL
            case "PENDING":
                if current not in FINAL_STATUSES:
                    running.status = InvoiceStatus.PENDING
            case "REJECTED":
                if current is InvoiceStatus.PENDING:
                    paid = bool(running.collections)
                    running.status = InvoiceStatus.PARTIAL if paid else InvoiceStatus.SENT
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
    ) -> tuple[dict[int, Decimal | None], dict[int, list[tuple[datetime, Decimal]]]]:
        """Each PAYMENT entry's amount; where the history leaves it out, what the observed
        paid amount (total - balance) needs. What no entry can explain is collected at the
        observation that shows it."""
        payments = [f for f in self._entries if _entry(f).history_event == "PAYMENT"]
        amounts: dict[int, Decimal | None] = {}
        seen: set[str] = set()
        for fact in payments:
            transaction = _entry(fact).transaction
            if transaction and transaction.transaction_id:
                if transaction.transaction_id in seen:
                    continue
                seen.add(transaction.transaction_id)
            amounts[fact.event.position] = transaction.amount if transaction else None
        adjustments: dict[int, list[tuple[datetime, Decimal]]] = {}
        paid_so_far = ZERO
        remaining = [f for f in payments if f.event.position in amounts]
        for anchor in self._observations:
            stated = anchor.payload.stated  # type: ignore[union-attr]
            if stated.total_amount is None or stated.balance_amount is None:
                continue
            due = [f for f in remaining if f.order() <= anchor.order()]
            remaining = [f for f in remaining if f.order() > anchor.order()]
            target = stated.total_amount - stated.balance_amount
            known = sum((amounts[f.event.position] or ZERO for f in due), ZERO)
            unknown = [f for f in due if amounts[f.event.position] is None]
            missing = target - paid_so_far - known
            for index, fact in enumerate(unknown):
                share = missing if index == 0 and missing > 0 else ZERO
                amounts[fact.event.position] = share
                missing -= share
            if missing != 0:
                adjustments.setdefault(anchor.event.position, []).append((anchor.moment, missing))
            paid_so_far = target
        return amounts, adjustments


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
