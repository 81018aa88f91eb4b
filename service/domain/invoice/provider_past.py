"""The invoice's past up to its latest observation, reconstructed from the provider's own
history: payments, the totals along it, and amounts the history leaves out."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from service.domain.invoice.facts import NOTIFICATION_LAG_MAX, _Fact
from service.domain.invoice.running import _Running
from service.domain.invoice.state import ZERO, InvoiceState, Payment
from service.domain.payloads import (
    HistoryEntryRecorded,
    InvoiceObserved,
    NotificationReceived,
    StatedFields,
    TransactionObserved,
)
from service.domain.status import (
    FINAL_STATUSES,
    PAYMENT_NOTIFICATION_TYPES,
    E,
    InvoiceStatus,
)


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
        self._claim_by_amount(
            [
                f
                for f in self._notifications
                if f.event.type in PAYMENT_NOTIFICATION_TYPES and f.key[1] not in paired
            ]
        )

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
        running.name_customer(observed.stated)
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
