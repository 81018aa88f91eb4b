"""Whether a list summary vouches for the ledger, or the details must be fetched."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from service.reconciler.summaries import (
    FetchReason,
    LedgerInvoice,
    UnnamedInvoice,
    fetch_reason,
    read_listed_invoice,
)

LEDGER = LedgerInvoice(
    status="SENT",
    currency="USD",
    total_amount=Decimal("247.86"),
    balance_amount=Decimal("247.86"),
    due_date=date(2019, 7, 11),
    customer_name="Tanya Lee",
)


def summary(**changes: Any) -> dict[str, Any]:
    """A list item as the client reads it (JSON numbers as Decimal)."""
    item: dict[str, Any] = {
        "id": "2670",
        "status": "SENT",
        "customerInformation": {"name": "Tanya Lee"},
        "invoiceInformation": {"dueDate": "2019-07-11"},
        "orderInformation": {
            "amountDetails": {"totalAmount": Decimal("247.86"), "currency": "USD"}
        },
    }
    item.update(changes)
    return item


def reason(item: dict[str, Any], ledger: LedgerInvoice | None = LEDGER) -> FetchReason | None:
    return fetch_reason(read_listed_invoice(item).summary, ledger)


def test_a_summary_agreeing_with_the_ledger_needs_no_details() -> None:
    assert reason(summary()) is None


def test_an_amount_given_as_a_string_or_a_number_agrees_alike() -> None:
    as_text = {"amountDetails": {"totalAmount": "247.860", "currency": "USD"}}
    assert reason(summary(orderInformation=as_text)) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "CANCELED"},
        {"invoiceInformation": {"dueDate": "2019-08-11"}},
        {"orderInformation": {"amountDetails": {"totalAmount": 250, "currency": "USD"}}},
        {
            "orderInformation": {
                "amountDetails": {"totalAmount": Decimal("247.86"), "currency": "EUR"}
            }
        },
        {"customerInformation": {"name": "Tanya Leigh"}},
    ],
)
def test_a_summary_that_disagrees_is_fetched(changes: dict[str, Any]) -> None:
    assert reason(summary(**changes)) is FetchReason.DISAGREES


def test_an_invoice_the_ledger_does_not_know_is_fetched() -> None:
    assert reason(summary(), None) is FetchReason.UNKNOWN_TO_LEDGER


@pytest.mark.parametrize("status", ["PARTIAL", "PENDING"])
def test_an_invoice_whose_balance_can_move_without_its_status_is_fetched(status: str) -> None:
    ledger = LedgerInvoice(
        status, "USD", Decimal("247.86"), Decimal("100"), date(2019, 7, 11), "Tanya Lee"
    )
    assert reason(summary(status=status), ledger) is FetchReason.BALANCE_CAN_MOVE


@pytest.mark.parametrize(
    ("status", "balance"),
    [("SENT", Decimal("200")), ("PAID", Decimal("1")), ("SENT", None), ("CANCELED", Decimal("-1"))],
)
def test_a_ledger_whose_balance_does_not_fit_the_status_is_fetched(
    status: str, balance: Decimal | None
) -> None:
    ledger = LedgerInvoice(
        status, "USD", Decimal("247.86"), balance, date(2019, 7, 11), "Tanya Lee"
    )
    assert reason(summary(status=status), ledger) is FetchReason.LEDGER_INCOMPLETE


@pytest.mark.parametrize(
    "changes",
    [
        {"status": None},
        {"status": ["SENT"]},
        {"invoiceInformation": {"dueDate": "soon"}},
        {"orderInformation": {"amountDetails": {"totalAmount": "lots", "currency": "USD"}}},
        {"orderInformation": {"amountDetails": {"totalAmount": 1, "currency": "dollars"}}},
        {"customerInformation": "Tanya"},
    ],
)
def test_an_unreadable_summary_is_fetched_never_skipped(changes: dict[str, Any]) -> None:
    assert reason(summary(**changes)) is FetchReason.UNREADABLE_SUMMARY


@pytest.mark.parametrize("item", [{"status": "SENT"}, {"id": ""}, {"id": None}, "2670", None])
def test_a_listed_item_without_a_number_cannot_be_fetched(item: Any) -> None:
    with pytest.raises(UnnamedInvoice):
        read_listed_invoice(item)


def test_a_numeric_id_is_read_as_the_invoice_number() -> None:
    assert read_listed_invoice(summary(id=2670)).invoice_number == "2670"
