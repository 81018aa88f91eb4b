"""The sorted invoice list's cursors, and where the invoice page says a payment came from."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from service.fronts.console.payment_sources import payment_sources
from service.read.cursors import UnreadableCursor, decode_sorted_cursor, encode_sorted_cursor
from service.read.sorted_invoices import InvoiceSort, SortKey

UPDATED = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        (InvoiceSort("due", False), date(2026, 4, 30)),
        (InvoiceSort("due", True), None),
        (InvoiceSort("balance", True), Decimal("1829.500000")),
        (InvoiceSort("updated", False), None),
    ],
)
@pytest.mark.parametrize("before", [False, True])
def test_a_sorted_cursor_reads_back_as_the_key_and_side_it_was_made_with(
    sort: InvoiceSort, value: date | Decimal | None, before: bool
) -> None:
    key = SortKey(value, UPDATED, "org-a", "INV-1")
    assert decode_sorted_cursor(encode_sorted_cursor(sort, key, before=before), sort) == (
        key, before,
    )  # fmt: skip


def test_a_cursor_is_refused_for_another_sort_or_when_it_is_not_one() -> None:
    key = SortKey(date(2026, 4, 30), UPDATED, "org-a", "INV-1")
    cursor = encode_sorted_cursor(InvoiceSort("due", False), key, before=False)
    for other in (InvoiceSort("due", True), InvoiceSort("balance", False)):
        with pytest.raises(UnreadableCursor):
            decode_sorted_cursor(cursor, other)
    for made_up in ("", "bm90IGpzb24", "WyJzb3J0ZWQiXQ"):
        with pytest.raises(UnreadableCursor):
            decode_sorted_cursor(made_up, InvoiceSort())


def test_a_payment_s_sources_are_those_of_the_facts_in_force_at_its_time() -> None:
    at = "2026-03-10T10:00:00Z"
    events = [
        {"type": "InvoiceSent", "occurredAt": "2026-03-01T10:00:00Z", "source": "webhook"},
        {"type": "InvoicePartiallyPaid", "occurredAt": at, "source": "webhook",
         "correctedBy": 9},
        {"type": "InvoicePartiallyPaid", "occurredAt": at, "source": "operator"},
        {"type": "PaymentReceived", "occurredAt": "2026-03-10T10:00:00.000+00:00",
         "source": "reconciler"},
        {"type": "PaymentReceived", "occurredAt": at, "source": "reconciler"},
    ]  # fmt: skip
    payments = [{"date": at}, {"date": "2026-03-11T00:00:00Z"}]
    assert [[item["source"] for item in found] for found in payment_sources(payments, events)] == [
        ["operator", "reconciler"], [],
    ]  # fmt: skip
