"""Facts about one invoice (1001 of org-a), written as the ledger would record them, in arrival
order: notifications, history entries, observations, transaction answers and corrections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from service.domain.events import EventSource, InvoiceEventType, RecordedEvent
from service.domain.invoice import InvoiceState, fold, fold_as_of
from service.domain.payloads import (
    CorrectionRecorded,
    HistoryEntryRecorded,
    InvoiceObserved,
    NotificationIdentity,
    NotificationReceived,
    PaymentReported,
    StatedFields,
    TransactionObserved,
    encode,
)

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
E = InvoiceEventType
ORG = "org-a"
D = Decimal


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Facts:
    """Facts about invoice 1001 in arrival order (positions follow the calls)."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def _add(self, type_: str, moment: datetime, source: EventSource, data: dict[str, Any]) -> None:
        position = len(self.events) + 1
        self.events.append(
            RecordedEvent(position, "1001", position, type_, 2, moment, moment, source,
                          f"k{position}", data)
        )  # fmt: skip

    def notified(self, type_: str, minutes: float, paid: str | None = None, **stated: Any) -> Facts:
        fields = StatedFields(currency="USD", **stated)
        payment = None if paid is None else PaymentReported(None, D(paid))  # paymentAmount
        notice = NotificationReceived(ORG, "1001", fields, payment, NotificationIdentity())
        self._add(type_, at(minutes), EventSource.WEBHOOK, encode(notice))
        return self

    def history(
        self,
        event: str,
        minutes: float,
        transaction: str | None = None,
        amount: str | None = None,
        occurrence: int = 0,
    ) -> Facts:
        reported = None
        if transaction or amount:
            reported = PaymentReported(transaction, None if amount is None else D(amount))
        entry = HistoryEntryRecorded(ORG, "1001", event, reported, "USD", occurrence)
        self._add(E.PAYMENT_RECEIVED if event == "PAYMENT" else "InvoiceHistoryRecorded",
                  at(minutes), EventSource.RECONCILER, encode(entry))  # fmt: skip
        return self

    def corrected(
        self, position: int, type_: str, minutes: float, paid: str | None = None, **stated: Any
    ) -> Facts:
        """An operator's correction of the event at ``position``, recorded now."""
        payment = None if paid is None else PaymentReported(None, D(paid))
        correction = CorrectionRecorded(
            ORG, "1001", StatedFields(currency="USD", **stated), payment, NotificationIdentity(),
            reason="the conflicting version is right", corrects_position=position,
        )  # fmt: skip
        self._add(type_, at(minutes), EventSource.OPERATOR, encode(correction))
        return self

    def transaction(self, transaction: str, amount: str, minutes: float) -> Facts:
        """The Transaction Details API's answer for one payment transaction."""
        answer = TransactionObserved(ORG, "1001", transaction, D(amount), "USD")
        self._add(E.TRANSACTION_OBSERVED, at(minutes), EventSource.RECONCILER, encode(answer))
        return self

    def observed(
        self,
        minutes: float,
        status: str,
        total: str,
        balance: str,
        due: str = "2026-04-01",
        customer_name: str | None = None,
    ) -> Facts:
        stated = StatedFields(
            "USD", D(total), D(balance), date.fromisoformat(due), customer_name=customer_name
        )
        observed = InvoiceObserved(ORG, "1001", status, stated)
        self._add(E.INVOICE_OBSERVED, at(minutes), EventSource.RECONCILER, encode(observed))
        return self

    def state(self) -> InvoiceState:
        return fold("1001", self.events, ORG)

    def as_of(self, minutes: float) -> InvoiceState:
        return fold_as_of("1001", self.events, at(minutes), ORG)


def collected(state: InvoiceState) -> Decimal | None:
    return state.collected_amount
