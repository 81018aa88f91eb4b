"""The invoice document's amounts always match the generated OpenAPI patterns, and an
invoice read from the read model is the same document as the state it was projected from."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from service.domain.invoice import InvoiceState, Payment
from service.domain.status import InvoiceStatus
from service.fronts.api.contract import declared_operations, openapi_document
from service.fronts.api.routes import OPERATIONS, QueryApi
from service.read.documents import as_json, invoice_document, invoice_from_row
from service.store.views.changes import ProjectedInvoice, invoice_row

AMOUNT_FIELDS = ("totalAmount", "balanceAmount", "paidAmount")


def _amount_pattern() -> re.Pattern[str]:
    operations = [operation for group in OPERATIONS.values() for operation in group]
    document = openapi_document(operations, title="t", version="1", description="d")
    paid = document["components"]["schemas"]["Invoice"]["properties"]["paidAmount"]
    [pattern] = [branch["pattern"] for branch in paid["anyOf"] if "pattern" in branch]
    return re.compile(pattern)


def _documents(total: str, balance: str) -> list[dict[str, Any]]:
    state = InvoiceState(
        "INV-1", "org", InvoiceStatus.SENT, "USD", Decimal(total), Decimal(balance)
    )
    row = SimpleNamespace(
        organization_id="org", invoice_number="INV-1", status="SENT", currency="USD",
        total_amount=Decimal(total), balance_amount=Decimal(balance), total_provisional=False,
        balance_provisional=False, due_date=None,
        customer_name=None, customer_email=None, customer_erased=False, payments=[],
        last_event_at=None,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    documents = [invoice_document(state, None), invoice_from_row(row)]  # type: ignore[arg-type]
    return [as_json(document) for document in documents]


def test_paid_amount_is_null_never_negative_when_the_balance_exceeds_the_total() -> None:
    for document in _documents("100.00", "150.00"):
        assert document["paidAmount"] is None
        assert (document["totalAmount"], document["balanceAmount"]) == ("100.00", "150.00")


def test_every_amount_in_an_invoice_document_matches_the_openapi_pattern() -> None:
    pattern = _amount_pattern()
    cases = [("100.00", "150.00"), ("-0", "-0.00"), ("9999999999999.999999", "0.000001"),
             ("0", "0"), ("100", "100")]  # fmt: skip
    for total, balance in cases:
        for document in _documents(total, balance):
            for field in AMOUNT_FIELDS:
                value = document[field]
                assert value is None or pattern.fullmatch(value), (field, value)


def test_an_invoice_read_back_from_its_row_is_the_document_of_its_state() -> None:
    state = InvoiceState(
        "2026/0042", "org", InvoiceStatus.PARTIAL, "KWD", Decimal("10.5"), Decimal("4.25"),
        date(2026, 3, 31), "Tanya Lee", None,
        (Payment("t-1", Decimal("6.25"), datetime(2026, 3, 2, 23, 30, 0, 120000, tzinfo=UTC)),
         Payment(None, None, datetime(2026, 3, 3, tzinfo=UTC))),
        last_event_at=datetime(2026, 3, 3, tzinfo=UTC), last_position=7,
    )  # fmt: skip
    updated_at = datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC)
    row = SimpleNamespace(**invoice_row(ProjectedInvoice(state, (), updated_at)))
    from_row = as_json(invoice_from_row(row))  # type: ignore[arg-type]
    assert from_row == as_json(invoice_document(state, updated_at))
    assert from_row["payments"][0] == {
        "transactionId": "t-1",
        "amount": "6.250",
        "date": "2026-03-02T23:30:00.120000Z",
        "provisional": False,
    }


def test_every_route_of_the_query_api_declares_its_operations() -> None:
    api = QueryApi(None, None, None, None)  # type: ignore[arg-type]
    declared = declared_operations(api.routes())
    assert len(declared) == 7
    assert len({operation.operation_id for operation in declared}) == 7
