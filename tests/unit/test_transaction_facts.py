"""A Transaction Details answer becomes one fact per transaction; the payment entries worth
asking about are those that name a transaction and no amount."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.cybersource.transaction_details import (
    InvalidTransactionDetails,
    read_transaction_details,
)
from service.domain.events import (
    CURRENT_SCHEMA_VERSION,
    EventSource,
    InvoiceEventType,
    NewEvent,
    RecordedEvent,
)
from service.domain.invoice import InvoiceState, Payment
from service.domain.payloads import TransactionObserved, decode
from service.reconciler.facts import (
    observed_transactions,
    read_details,
    transaction_observation,
    transactions_without_amount,
    unattributed_transactions,
)

CALLED_AT = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)


def recorded(event: NewEvent, position: int = 1) -> RecordedEvent:
    return RecordedEvent(
        position=position, stream_id=event.stream_id, version=position, type=event.type,
        schema_version=CURRENT_SCHEMA_VERSION, occurred_at=event.occurred_at,
        recorded_at=CALLED_AT, source=event.source, idempotency_key=event.idempotency_key,
        data=event.data,
    )  # fmt: skip


def answer(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "tx-1",
        "submitTimeUTC": "2026-03-02T10:15:30Z",
        "orderInformation": {"amountDetails": {"totalAmount": "12.50", "currency": "EUR"}},
    }
    document.update(changes)
    return document


def test_an_answer_becomes_a_fact_keyed_by_organization_and_transaction() -> None:
    details = read_transaction_details(answer(), "tx-1")
    event = transaction_observation(
        details, "org-a", "2670", invoice_currency="USD", called_at=CALLED_AT
    )
    assert event.type == InvoiceEventType.TRANSACTION_OBSERVED
    assert (event.stream_id, event.source) == ("2670", EventSource.RECONCILER)
    assert event.idempotency_key == "cybersource:transaction:org-a:tx-1"
    assert event.occurred_at == datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
    assert event.time_is_content
    assert decode(recorded(event)) == TransactionObserved(
        "org-a", "2670", "tx-1", Decimal("12.50"), "EUR"
    )


def test_without_a_submit_time_the_fact_is_dated_when_it_was_asked_for() -> None:
    document = answer(orderInformation={"amountDetails": {"totalAmount": 7}})
    del document["submitTimeUTC"]
    details = read_transaction_details(document, "tx-1")
    event = transaction_observation(
        details, "org-a", "2670", invoice_currency="JPY", called_at=CALLED_AT
    )
    assert event.occurred_at == CALLED_AT and not event.time_is_content
    assert (event.data["amount"], event.data["currency"]) == ("7", "JPY")


@pytest.mark.parametrize(
    ("document", "field"),
    [(answer(orderInformation={}), "orderInformation.amountDetails"),
     (answer(orderInformation={"amountDetails": {"totalAmount": 1.5}}),
      "orderInformation.amountDetails.totalAmount"),
     (answer(submitTimeUTC="yesterday"), "submitTimeUTC"),
     (answer(id=""), "id")],
)  # fmt: skip
def test_an_unreadable_answer_names_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidTransactionDetails, match=f"^{field}: "):
        read_transaction_details(document, "tx-1")


def test_only_payment_entries_naming_a_transaction_without_an_amount_are_worth_asking() -> None:
    details = read_details(
        {
            "id": "2670",
            "status": "PAID",
            "invoiceHistory": [
                {"event": "PAYMENT", "date": "2026-03-04T00:00:00Z",
                 "transactionDetails": {"transactionId": "tx-3"}},
                {"event": "PAYMENT", "date": "2026-03-03T00:00:00Z"},
                {"event": "PAYMENT", "date": "2026-03-02T00:00:00Z",
                 "transactionDetails": {"transactionId": "tx-2", "amount": 5}},
                {"event": "PENDING", "date": "2026-03-01T12:00:00Z",
                 "transactionDetails": {"transactionId": "tx-0"}},
                {"event": "PAYMENT", "date": "2026-03-01T00:00:00Z",
                 "transactionDetails": {"transactionId": "tx-1", "amount": None}},
            ],
        }
    )  # fmt: skip
    assert transactions_without_amount(details) == ["tx-1", "tx-3"]


def test_the_ledger_cannot_attribute_payments_of_unknown_amount() -> None:
    at = CALLED_AT
    payments = (Payment("tx-1", None, at), Payment("tx-2", Decimal(5), at), Payment(None, None, at))
    ledger = InvoiceState("2670", payments=payments)
    assert unattributed_transactions(ledger) == {"tx-1"}


def test_the_transactions_already_asked_about_are_read_from_the_stream() -> None:
    details = read_transaction_details(answer(), "tx-1")
    event = transaction_observation(
        details, "org-a", "2670", invoice_currency=None, called_at=CALLED_AT
    )
    assert observed_transactions([recorded(event, 4)]) == {"tx-1"}
