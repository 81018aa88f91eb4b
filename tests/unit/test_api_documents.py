"""The invoice document's amounts always match the OpenAPI patterns."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from types import SimpleNamespace
from typing import Any

from service.api.documents import invoice_from_row, invoice_from_state
from service.domain.invoice import InvoiceState, InvoiceStatus

AMOUNT_FIELDS = ("totalAmount", "balanceAmount", "paidAmount")


def _amount_pattern() -> re.Pattern[str]:
    document = json.loads(resources.files("service.api").joinpath("openapi.json").read_text())
    pattern = document["components"]["schemas"]["Invoice"]["properties"]["paidAmount"]["pattern"]
    return re.compile(pattern)


def _documents(total: str, balance: str) -> list[dict[str, Any]]:
    state = InvoiceState(
        "INV-1", "org", InvoiceStatus.SENT, "USD", Decimal(total), Decimal(balance)
    )
    row = SimpleNamespace(
        organization_id="org", invoice_number="INV-1", status="SENT", currency="USD",
        total_amount=Decimal(total), balance_amount=Decimal(balance), due_date=None,
        customer_name=None, customer_email=None, payments=[], last_event_at=None,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return [invoice_from_state(state, None), invoice_from_row(row)]  # type: ignore[arg-type]


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
