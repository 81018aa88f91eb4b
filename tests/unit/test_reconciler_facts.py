from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.domain.events import EventSource, InvoiceEventType
from service.domain.invoice import InvoiceState
from service.domain.status import InvoiceStatus
from service.reconciler.facts import (
    InvalidInvoiceDetails,
    observation_is_news,
    read_details,
    reconciler_facts,
)


def documented_details(**changes: Any) -> dict[str, Any]:
    """The Get Invoice Details example from Cybersource's guide (amounts as JSON numbers)."""
    document: dict[str, Any] = {
        "id": "2670",
        "submitTimeUtc": "2024-07-24T18:36:18.863175539Z",
        "status": "SENT",
        "customerInformation": {"name": "Tanya Lee", "email": "tanya@example.com"},
        "invoiceInformation": {"invoiceNumber": "2670", "dueDate": "2019-07-11"},
        # JSON numbers, as the client parses them (parse_float=Decimal).
        "orderInformation": {"amountDetails": {"totalAmount": Decimal("247.86"), "currency": "USD",
                                               "balanceAmount": Decimal("247.86")}},
        "invoiceHistory": [{"event": "SEND", "date": "2024-07-24T18:35:23.320Z"},
                           {"event": "DRAFT", "date": "2024-07-24T18:35:22.960Z"}],
    }  # fmt: skip
    document.update(changes)
    return document


def test_the_documented_example_becomes_history_events_and_an_observation() -> None:
    facts = reconciler_facts(read_details(documented_details()), "testrest")
    assert [event.type for event in facts.all] == [
        InvoiceEventType.INVOICE_DRAFTED, InvoiceEventType.INVOICE_SENT,
        InvoiceEventType.INVOICE_OBSERVED,
    ]  # fmt: skip
    observation = facts.observation
    assert observation.data["status"] == "SENT"
    assert observation.data["totalAmount"] == "247.86"
    assert observation.data["organizationId"] == "testrest"
    # The truth as of the moment Cybersource answered, not as of its latest history entry.
    assert observation.occurred_at == datetime(2024, 7, 24, 18, 36, 18, 863175, tzinfo=UTC)
    assert {event.source for event in facts.all} == {EventSource.RECONCILER}


def test_the_same_history_gives_the_same_facts_and_each_answer_a_new_observation() -> None:
    first = reconciler_facts(read_details(documented_details()), "testrest")
    later = documented_details(submitTimeUtc="2025-01-01T00:00:00Z")
    again = reconciler_facts(read_details(later), "testrest")
    assert [(e.idempotency_key, e.data) for e in first.history] == [
        (e.idempotency_key, e.data) for e in again.history
    ]
    assert first.observation.idempotency_key != again.observation.idempotency_key


def test_an_observation_is_never_dated_before_the_history_it_shows() -> None:
    details = documented_details(submitTimeUtc="2024-07-24T18:35:00Z")  # a skewed clock
    facts = reconciler_facts(read_details(details), "testrest")
    assert facts.observation.occurred_at == max(e.occurred_at for e in facts.history)


def test_without_submit_time_the_observation_is_dated_at_the_call() -> None:
    called_at = datetime(2026, 1, 1, tzinfo=UTC)
    details = read_details(documented_details(submitTimeUtc=None))
    assert reconciler_facts(details, "o", called_at=called_at).observation.occurred_at == called_at


def test_a_payment_entry_carries_its_transaction() -> None:
    payment = {"event": "PAYMENT", "date": "2024-07-25T10:00:00Z",
               "transactionDetails": {"transactionId": "tx-1", "amount": "100.00"}}  # fmt: skip
    details = read_details(documented_details(invoiceHistory=[payment]))
    [event] = reconciler_facts(details, "testrest").history
    assert event.type == InvoiceEventType.PAYMENT_RECEIVED
    assert event.data["payment"] == {"transactionId": "tx-1", "amount": "100.00"}
    assert "tx-1" in event.idempotency_key and "testrest" in event.idempotency_key


def test_identical_history_entries_are_told_apart_by_their_occurrence() -> None:
    payment = {"event": "PAYMENT", "date": "2024-07-25T10:00:00.001Z"}
    details = read_details(documented_details(invoiceHistory=[payment, dict(payment)]))
    keys = [event.idempotency_key for event in reconciler_facts(details, "o").history]
    assert len(set(keys)) == 2


def test_an_observation_is_news_when_the_ledger_differs_from_it() -> None:
    facts = reconciler_facts(read_details(documented_details()), "testrest")
    matching = InvoiceState("2670", "testrest", InvoiceStatus.SENT, "USD", Decimal("247.86"),
                            Decimal("247.86"), date(2019, 7, 11), "Tanya Lee",
                            "tanya@example.com")  # fmt: skip
    assert not observation_is_news(matching, facts.observed)
    # A customer renamed (or named for the first time) is news; the list shows the name too.
    assert observation_is_news(replace(matching, customer_name="T. Lee"), facts.observed)
    # A name removed by an update (the answer shows none) is news: the ledger removes it.
    unnamed = replace(facts.observed, stated=replace(facts.observed.stated, customer_name=None))
    assert observation_is_news(matching, unnamed)
    stale = InvoiceState("2670", "testrest", InvoiceStatus.PAID, "USD", Decimal("247.86"),
                         Decimal("0"), date(2019, 7, 11))  # fmt: skip
    assert observation_is_news(stale, facts.observed)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"orderInformation": {"amountDetails": {"totalAmount": "lots"}}}, "totalAmount"),
        ({"invoiceHistory": [{"event": "SEND", "date": "yesterday"}]}, "date"),
        ({"status": None}, "status"),
        ({"id": ""}, "id"),
    ],
)
def test_unreadable_details_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInvoiceDetails, match=field):
        read_details(documented_details(**changes))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customerInformation": {"name": "Tanya\x00Lee"}}, "name"),
        ({"customerInformation": {"email": "tanya\ud800@example.com"}}, "email"),
        ({"invoiceInformation": {"invoiceNumber": "26\x0070"}}, "invoiceNumber"),
        ({"id": "26\x0070"}, "id"),
    ],
)
def test_details_holding_text_no_database_can_store_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    # PostgreSQL text and JSONB hold no NUL and no lone surrogate: such details are refused
    # alike on both engines instead of failing only PostgreSQL's append.
    with pytest.raises(InvalidInvoiceDetails, match=field):
        read_details(documented_details(**changes))
