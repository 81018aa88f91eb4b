"""Simulated Cybersource invoices and the facts the ledger would receive about them.

A lifecycle is generated as Cybersource would live it (drafts, updates only before payment,
reviews accepted or rejected, partial payments, cancellation only without payment), with
the truth at every moment kept aside. From it come the ledger's facts: history entries and
observations as Get Invoice Details would give them at chosen moments, and notifications
whose eventDate falls before, at or after the history entry they report (milliseconds to
minutes), some lost, some duplicated, all delivered in a shuffled order.

The generator is meant to be hostile rather than convenient: an invoice may live its whole
life within a second (as a test plays it, or a payer pays right after the invoice is sent)
while its notifications' eventDates stray by minutes, so any order of them is possible; an
update (no notification) may raise or lower the total after sending, after a rejected review,
before the first payment; a payment notification may or may not name its amount.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from service.domain.events import EventSource, InvoiceEventType, RecordedEvent
from service.domain.payloads import (
    HistoryEntryRecorded,
    InvoiceObserved,
    NotificationIdentity,
    NotificationReceived,
    PaymentReported,
    StatedFields,
    TransactionObserved,
    encode,
)
from service.reconciler.facts import EVENT_TYPE_BY_HISTORY_EVENT

E = InvoiceEventType
START = datetime(2026, 3, 1, 9, tzinfo=UTC)
EXPONENTS = {"USD": 2, "JPY": 0, "KWD": 3}


@dataclass(frozen=True)
class Truth:
    """How the invoice stood, as Cybersource knew it, from ``moment`` on."""

    moment: datetime
    status: str
    total: Decimal
    balance: Decimal
    due_date: date


@dataclass(frozen=True)
class Entry:
    event: str
    moment: datetime
    transaction_id: str | None = None
    amount: Decimal | None = None
    details_shown: bool = True
    # transactionDetails shown with its transactionId but without its amount (seed 003's
    # example shape): the Transaction Details API may answer it.
    amount_shown: bool = True


@dataclass
class Lifecycle:
    organization_id: str
    number: str
    currency: str
    truths: list[Truth] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    # (moment of the entry, notification type) for every notification Cybersource sends.
    notifications: list[tuple[Entry, str, Truth]] = field(default_factory=list)

    def truth_at(self, moment: datetime) -> Truth | None:
        standing = [truth for truth in self.truths if truth.moment <= moment]
        return standing[-1] if standing else None

    def paid_at(self, moment: datetime) -> Decimal:
        return sum(
            (
                e.amount or Decimal(0)
                for e in self.entries
                if e.event == "PAYMENT" and e.moment <= moment
            ),
            Decimal(0),
        )


def simulate(
    rng: random.Random,
    organization_id: str = "org-a",
    number: str = "1001",
    pace: float | None = None,
) -> Lifecycle:
    """``pace``: the longest pause between two changes, in seconds (None draws one: minutes,
    or a life played within a second)."""
    currency = rng.choice(list(EXPONENTS))
    quantum = Decimal(1).scaleb(-EXPONENTS[currency])
    life = Lifecycle(organization_id, number, currency)
    moment = START + timedelta(seconds=rng.randrange(0, 3600))

    def drawn_total() -> Decimal:
        # Log-uniform, so an update may multiply or divide the total many times over.
        return quantum * round(math.exp(rng.uniform(math.log(1_000), math.log(100_000))))

    total = drawn_total()
    due = date(2026, 3, 1) + timedelta(days=rng.randrange(0, 90))
    status, balance = "DRAFT", total
    pace = rng.choice([900.0, 2.0, 0.05]) if pace is None else pace

    def record(
        event: str, new_status: str, notification: str | None = None, **entry: object
    ) -> None:
        nonlocal moment
        moment += timedelta(seconds=rng.uniform(0.002, pace))
        item = Entry(event, moment, **entry)  # type: ignore[arg-type]
        life.entries.append(item)
        life.truths.append(Truth(moment, new_status, total, balance, due))
        if notification:
            life.notifications.append((item, notification, life.truths[-1]))

    if rng.random() < 0.5:
        record("DRAFT", "DRAFT")
        status = "CREATED" if rng.random() < 0.5 else "DRAFT"
        if status == "CREATED":
            record("CREATE", "CREATED")
    else:
        status = "CREATED"
        record("CREATE", "CREATED")

    def update() -> None:
        nonlocal total, balance, due
        total = balance = drawn_total()
        if rng.random() < 0.5:
            due += timedelta(days=rng.randrange(1, 30))
        record("UPDATE", status)

    for _ in range(rng.choice([0, 0, 1, 2])):
        update()
    status = "SENT"
    record("SEND", status, "invoicing.customer.invoice.send")
    # A sent invoice may still be updated before any payment: no notification says so.
    for _ in range(rng.choice([0, 1, 1])):
        update()
    if rng.random() < 0.15:
        record("CANCEL", "CANCELED", "invoicing.customer.invoice.cancel")
        return life
    payers = rng.randrange(0, 4)
    for payer in range(payers):
        if balance == 0:
            break
        units = int(balance / quantum)
        amount = (
            balance
            if payer == payers - 1 and rng.random() < 0.5  # or stays partially paid
            # Log-uniform: a payment of a few cents is as likely as one of most of the balance.
            else quantum * max(1, min(units, round(math.exp(rng.uniform(0, math.log(units))))))
        )
        transaction = f"{number}-tx{payer}"
        if rng.random() < 0.25:
            record(
                "PENDING",
                "PENDING",
                transaction_id=transaction,
                amount=amount,
                details_shown=rng.random() < 0.5,
            )
            if rng.random() < 0.4:
                record(
                    "REJECTED",
                    "SENT",  # as Cybersource documents it, even after a partial payment
                    transaction_id=transaction,
                    details_shown=rng.random() < 0.5,
                )
                if balance == total and rng.random() < 0.5:
                    update()  # nothing paid yet: the total may still change, silently
                continue
        balance -= amount
        status = "PAID" if balance == 0 else "PARTIAL"
        kind = "paid" if balance == 0 else "partial-payment"
        record(
            "PAYMENT",
            status,
            f"invoicing.customer.invoice.{kind}",
            transaction_id=transaction,
            amount=amount,
            details_shown=rng.random() < 0.85,
            amount_shown=rng.random() < 0.7,
        )
    if status in ("SENT", "PARTIAL") and rng.random() < 0.5:
        record("REMINDER", status, "invoicing.customer.invoice.reminder")
    return life


@dataclass
class Delivery:
    """What reaches the ledger, in arrival order; positions are given on arrival."""

    facts: list[tuple[str, datetime, EventSource, dict[str, object], str]] = field(
        default_factory=list
    )

    def recorded(self, rng: random.Random) -> list[RecordedEvent]:
        arrival = list(self.facts)
        rng.shuffle(arrival)
        seen: set[str] = set()
        events = []
        for type_, moment, source, data, key in arrival:
            if key in seen:
                continue  # the store keeps one event per idempotency key
            seen.add(key)
            position = len(events) + 1
            events.append(
                RecordedEvent(
                    position=position,
                    stream_id=str(data["invoiceNumber"]),
                    version=position,
                    type=type_,
                    schema_version=2,
                    occurred_at=moment,
                    recorded_at=moment,
                    source=source,
                    idempotency_key=key,
                    data=data,
                )
            )
        return events


def lag(rng: random.Random) -> timedelta:
    """How far a notification's eventDate strays from its history entry."""
    kind = rng.choice(["before-ms", "before-minutes", "equal", "after-ms", "after-minutes"])
    milliseconds = {
        "before-ms": -rng.uniform(1, 999),
        "before-minutes": -rng.uniform(60_000, 300_000),
        "equal": 0.0,
        "after-ms": rng.uniform(1, 999),
        "after-minutes": rng.uniform(60_000, 300_000),
    }[kind]
    return timedelta(milliseconds=milliseconds)


def notifications(
    life: Lifecycle, rng: random.Random, delivery: Delivery, lost_share: float = 0.3
) -> None:
    # Whether the subscription's payment notifications name the amount paid (paymentAmount).
    amounts_named = rng.random() < 0.5
    for index, (entry, notification_type, truth) in enumerate(life.notifications):
        if rng.random() < lost_share:
            continue
        payment = None
        if amounts_named and entry.event == "PAYMENT":
            payment = PaymentReported(None, entry.amount)
        fact = NotificationReceived(
            organization_id=life.organization_id,
            invoice_number=life.number,
            stated=StatedFields(
                currency=life.currency,
                balance_amount=truth.balance,
                due_date=truth.due_date,
                customer_name="Tanya Lee",
            ),
            payment=payment,
            notification=NotificationIdentity(
                f"{life.organization_id}-{life.number}-n{index}", "webhook-1", notification_type
            ),
        )
        type_ = {
            "send": E.INVOICE_SENT,
            "cancel": E.INVOICE_CANCELED,
            "paid": E.INVOICE_PAID,
            "partial-payment": E.INVOICE_PARTIALLY_PAID,
            "reminder": E.INVOICE_REMINDER_SENT,
        }[notification_type.rsplit(".", 1)[1]]
        copies = 2 if rng.random() < 0.15 else 1
        for _ in range(copies):
            delivery.facts.append(
                (
                    type_,
                    entry.moment + lag(rng),
                    EventSource.WEBHOOK,
                    encode(fact),
                    f"n:{life.organization_id}:{life.number}-{index}",
                )
            )


def answer_transaction(
    life: Lifecycle, transaction_id: str, amount: Decimal, moment: datetime, delivery: Delivery
) -> None:
    """The Transaction Details API asked about a payment whose history entry has no amount:
    it answers for about half of them (the rest are never asked, or answer 404)."""
    if sum(map(ord, transaction_id)) % 2:
        return
    answer = TransactionObserved(
        life.organization_id, life.number, transaction_id, amount, life.currency
    )
    delivery.facts.append(
        (
            E.TRANSACTION_OBSERVED,
            moment,
            EventSource.RECONCILER,
            encode(answer),
            f"t:{life.organization_id}:{transaction_id}",
        )
    )


def observe(life: Lifecycle, moment: datetime, delivery: Delivery) -> InvoiceObserved | None:
    """Get Invoice Details answered at ``moment``: its history entries and its observation."""
    truth = life.truth_at(moment)
    if truth is None:
        return None
    shown = [entry for entry in life.entries if entry.moment <= moment]
    occurrences: dict[tuple[str, datetime, str | None], int] = {}
    for entry in shown:
        transaction = entry.transaction_id if entry.details_shown else None
        identity = (entry.event, entry.moment, transaction)
        occurrence = occurrences.get(identity, 0)
        occurrences[identity] = occurrence + 1
        reported = None
        if entry.details_shown and entry.transaction_id:
            amount = entry.amount if entry.amount_shown else None
            reported = PaymentReported(entry.transaction_id, amount)
            if amount is None and entry.event == "PAYMENT" and entry.amount is not None:
                answer_transaction(life, entry.transaction_id, entry.amount, moment, delivery)
        fact = HistoryEntryRecorded(
            life.organization_id,
            life.number,
            entry.event,
            reported,
            life.currency if reported else None,
            occurrence,
        )
        key = (
            f"h:{life.organization_id}:{life.number}:{entry.event}:{entry.moment.isoformat()}:"
            f"{transaction}:{occurrence}"
        )
        delivery.facts.append(
            (
                EVENT_TYPE_BY_HISTORY_EVENT[entry.event],
                entry.moment,
                EventSource.RECONCILER,
                encode(fact),
                key,
            )
        )
    observed = InvoiceObserved(
        life.organization_id,
        life.number,
        truth.status,
        StatedFields(
            currency=life.currency,
            total_amount=truth.total,
            balance_amount=truth.balance,
            due_date=truth.due_date,
        ),
    )
    delivery.facts.append(
        (
            E.INVOICE_OBSERVED,
            moment,
            EventSource.RECONCILER,
            encode(observed),
            f"o:{life.organization_id}:{life.number}:{moment.isoformat()}",
        )
    )
    return observed
