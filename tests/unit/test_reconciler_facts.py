from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from service.domain.events import EventSource, InvoiceEventType
from service.reconciler.facts import InvalidInvoiceDetails, read_details, reconciler_facts


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
    events = reconciler_facts(read_details(documented_details()), "testrest")
    assert [event.type for event in events] == [
        InvoiceEventType.INVOICE_SENT, InvoiceEventType.INVOICE_DRAFTED,
        InvoiceEventType.INVOICE_OBSERVED,
    ]  # fmt: skip
    observation = events[-1]
    assert observation.data["status"] == "SENT"
    assert observation.data["totalAmount"] == "247.86"
    assert observation.occurred_at == events[0].occurred_at  # dated at the latest history entry
    assert {event.source for event in events} == {EventSource.RECONCILER}


def test_the_same_details_give_the_same_facts() -> None:
    first = reconciler_facts(read_details(documented_details()), "testrest")
    again = reconciler_facts(
        read_details(documented_details(submitTimeUtc="2025-01-01T00:00:00Z")), "testrest"
    )
    assert [(e.idempotency_key, e.data) for e in first] == [
        (e.idempotency_key, e.data) for e in again
    ]


def test_a_payment_entry_carries_its_transaction() -> None:
    payment = {"event": "PAYMENT", "date": "2024-07-25T10:00:00Z",
               "transactionDetails": {"transactionId": "tx-1", "amount": "100.00"}}  # fmt: skip
    [event, *_] = reconciler_facts(
        read_details(documented_details(invoiceHistory=[payment])), "testrest"
    )
    assert event.type == InvoiceEventType.PAYMENT_RECEIVED
    assert event.data["payment"] == {"transactionId": "tx-1", "amount": "100.00"}
    assert "tx-1" in event.idempotency_key


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
