"""The running fold: the invoice as the facts applied so far leave it, and how a notification
moves it (provisional figures until Cybersource's next answer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from service.domain.invoice.facts import NOTIFICATION_LAG_MAX, _Fact
from service.domain.invoice.state import ZERO, Collection, FoldSnapshot, InvoiceState, Payment
from service.domain.payloads import NotificationReceived, StatedFields
from service.domain.status import (
    AFTER_PAYMENT_NOTIFICATION_TYPES,
    FINAL_STATUSES,
    PAYMENT_NOTIFICATION_TYPES,
    REMINDER_NOTIFICATION_TYPES,
    E,
    InvoiceStatus,
)

# The members the fold compares with on every fact, read once: on Python 3.11 reading a
# member from its enum class goes through EnumType.__getattr__, and costs ten times as much
# as reading a module's name.
_SENT, _PARTIAL, _PAID, _CANCELED = (
    InvoiceStatus.SENT, InvoiceStatus.PARTIAL, InvoiceStatus.PAID, InvoiceStatus.CANCELED,
)  # fmt: skip
_REOPENABLE = (None, InvoiceStatus.DRAFT, InvoiceStatus.CREATED)
_PAID_BEFORE = (_PARTIAL, _PAID)
_SENDS = frozenset({E.INVOICE_SENT, E.INVOICE_REMINDER_SENT, E.INVOICE_OVERDUE_REMINDER_SENT})
_PARTIAL_STEPS = frozenset({E.INVOICE_PARTIAL_RESENT, E.INVOICE_PARTIALLY_PAID})
_INVOICE_PAID, _INVOICE_CANCELED = E.INVOICE_PAID, E.INVOICE_CANCELED


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
    customer_erased: bool = False
    # Per instant of the facts folded, the highest store position among the facts up to it
    # (``at_positions``): each state names it as it is made, rather than being made again.
    positions: dict[datetime, int] = field(default_factory=dict)

    @classmethod
    def resumed(cls, snapshot: FoldSnapshot) -> _Running:
        state = snapshot.last_state
        return cls(
            state.invoice_number, state.organization_id, state.status, state.currency,
            state.total_amount, state.balance_amount, state.due_date, state.customer_name,
            state.customer_email, list(state.payments), list(state.collections),
            snapshot.observed, set(snapshot.matched_payments), state.total_provisional,
            state.balance_provisional, state.customer_erased,
        )  # fmt: skip

    def at_positions(self, facts: Sequence[_Fact], highest_before: int = 0) -> None:
        """Learn the positions the states of ``facts`` (in the fold's order) name: at each
        instant, the highest among ``highest_before`` and the facts up to that instant."""
        highest = highest_before
        for moment, position in (fact.key for fact in facts):
            highest = max(highest, position)
            self.positions[moment] = highest

    def fold_snapshot(self, last_state: InvoiceState, facts: Sequence[_Fact]) -> FoldSnapshot:
        return FoldSnapshot(
            last_state=last_state,
            last_fact=facts[-1].key,
            highest_position=self.positions[facts[-1].moment],
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
            last_position=self.positions.get(moment, 0),
            total_provisional=self.total_provisional and self.total is not None,
            balance_provisional=self.balance_provisional and self.balance is not None,
            customer_erased=self.customer_erased,
        )

    def describe(self, stated: StatedFields) -> None:
        if stated.customer_erased:
            self.name_customer(stated)
            return
        if stated.customer_name is not None or stated.customer_email is not None:
            self.customer_erased = False  # a payer named anew after an erasure
        if stated.customer_name is not None:
            self.customer_name = stated.customer_name
        if stated.customer_email is not None:
            self.customer_email = stated.customer_email

    def name_customer(self, stated: StatedFields) -> None:
        """The customer exactly as ``stated`` names it (an erased one has no name or email)."""
        self.customer_name = stated.customer_name
        self.customer_email = stated.customer_email
        self.customer_erased = stated.customer_erased

    @property
    def paid_before(self) -> bool:
        return bool(self.collections) or self.status in _PAID_BEFORE

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
        if self.status is _PAID:
            self.state_balance(ZERO)
        if self.total is None or self.balance is None:
            return
        known = ZERO  # summed in order from ZERO, as sum() would, without a generator
        for collection in self.collections:
            if collection.amount is not None:
                known += collection.amount
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
        balance = ZERO if event_type == _INVOICE_PAID else stated.balance_amount
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


def next_status(
    current: InvoiceStatus | None, event_type: str, *, has_payments: bool
) -> InvoiceStatus | None:
    """The status a notification leads to."""
    if event_type in _SENDS:
        # Sending never reopens a settled invoice and a resend keeps PARTIAL/PENDING; an
        # invoice first heard of through a reminder was sent, so it is open.
        return _SENT if current in _REOPENABLE else current
    if event_type in _PARTIAL_STEPS:
        return current if current in FINAL_STATUSES else _PARTIAL
    if event_type == _INVOICE_PAID:
        return current if current is _CANCELED else _PAID
    if event_type == _INVOICE_CANCELED:
        return current if current is _PAID else _CANCELED
    return current
