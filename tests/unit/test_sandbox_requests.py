"""The sandbox validates invoice requests as Cybersource does, naming every bad field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from service.sandbox import json_numbers
from service.sandbox.errors import ValidationErrors
from service.sandbox.invoice_requests import parse_json_object, read_invoice_request
from service.sandbox.invoices import DeliveryMode


def request(total: Any = "100.00", currency: str = "USD", **invoice: Any) -> dict[str, Any]:
    return {
        "customerInformation": {"name": "Tanya Lee", "email": "tanya@example.com"},
        "invoiceInformation": {"description": "Consulting", "dueDate": "2026-12-31", **invoice},
        "orderInformation": {"amountDetails": {"totalAmount": total, "currency": currency}},
    }


def problems(document: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(ValidationErrors) as refused:
        read_invoice_request(document)
    return {(problem.field, problem.reason) for problem in refused.value.details}


def test_the_documented_example_is_read_exactly() -> None:
    body = json.dumps(request(293.5, sendImmediately=True, deliveryMode="email")).encode()
    invoice = read_invoice_request(parse_json_object(body))
    assert invoice.content.total_amount == Decimal("293.5")
    assert invoice.send_immediately and invoice.content.delivery_mode is DeliveryMode.EMAIL


@pytest.mark.parametrize(
    ("currency", "total", "valid"),
    [("JPY", "1000", True), ("JPY", "1000.5", False), ("KWD", "1.125", True),
     ("BHD", "1.1255", False), ("USD", "1.005", False), ("USD", "0", False),
     ("USD", "-5.00", False), ("USD", "abc", False)],
)  # fmt: skip
def test_amounts_keep_to_the_currency_exponent_and_are_positive(
    currency: str, total: str, valid: bool
) -> None:
    if valid:
        assert read_invoice_request(request(total, currency)).content.total_amount == Decimal(total)
    else:
        field = "orderInformation.amountDetails.totalAmount"
        assert problems(request(total, currency)) == {(field, "INVALID_DATA")}


def test_missing_required_fields_are_named_together() -> None:
    document: dict[str, Any] = {"customerInformation": {}, "invoiceInformation": {}}
    assert problems(document) == {
        ("orderInformation.amountDetails.totalAmount", "MISSING_FIELD"),
        ("orderInformation.amountDetails.currency", "MISSING_FIELD"),
        ("invoiceInformation.dueDate", "MISSING_FIELD"),
        ("invoiceInformation.description", "MISSING_FIELD"),
        ("customerInformation.email", "MISSING_FIELD"),
    }


def test_no_email_is_needed_when_nothing_is_emailed() -> None:
    document = request(deliveryMode="none")
    del document["customerInformation"]
    assert read_invoice_request(document).content.delivery_mode is DeliveryMode.NONE


def test_at_most_thirty_line_items_each_with_a_sku() -> None:
    item = {"productSku": "P1", "quantity": 1, "unitPrice": "1.00", "totalAmount": "1.00"}
    document = request()
    document["orderInformation"]["lineItems"] = [item] * 30
    assert len(read_invoice_request(document).content.line_items) == 30
    document["orderInformation"]["lineItems"] = [item] * 31
    assert problems(document) == {("orderInformation.lineItems", "INVALID_DATA")}
    document["orderInformation"]["lineItems"] = [{"quantity": 1.5}]
    assert problems(document) == {
        ("orderInformation.lineItems[0].productSku", "MISSING_FIELD"),
        ("orderInformation.lineItems[0].quantity", "INVALID_DATA"),
    }


def test_decimals_are_written_as_exact_json_numbers() -> None:
    document = {"a": Decimal("247.86"), "b": [Decimal("100.00"), Decimal("1E+2")], "c": "x"}
    written = json_numbers.dumps(document)
    assert written == '{"a":247.86,"b":[100.00,100],"c":"x"}'
    assert json.loads(written, parse_float=Decimal)["a"] == Decimal("247.86")
