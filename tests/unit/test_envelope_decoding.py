"""The receiver's one-decode reading of an envelope (msgspec), and its reading of an invoice
item without the model, are the models' readings: the same fields for every body and item,
the same refusal and message for every other."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.cybersource.envelope import (
    Envelope,
    UnusableBody,
    parse_body,
    read_envelope,
    read_invoice_data,
)
from service.cybersource.envelope_decoding import (
    PlainEnvelope,
    PlainInvoiceData,
    decode_envelope,
    decode_invoice_data,
)

FIELDS = (
    "notificationId", "eventType", "eventDate", "webhookId", "productId", "organizationId",
    "organizationID", "retryNumber", "payload", "payloads", "other",
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.text(max_size=8),
    st.text(alphabet="ab \x00\t", max_size=3),
    st.just("x" * 201),
    st.just("  padded  "),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {name: _json(item) for name, item in value.items()}
    return value


def model_reading(raw: bytes) -> Envelope | str:
    try:
        return read_envelope(parse_body(raw))
    except UnusableBody as refusal:
        return f"refused: {refusal}"


def decoded(raw: bytes) -> Envelope | PlainEnvelope | str:
    try:
        return decode_envelope(raw)
    except UnusableBody as refusal:
        return f"refused: {refusal}"


def fields(reading: Envelope | PlainEnvelope | str) -> Any:
    if isinstance(reading, str):
        return reading
    # repr, not ==: Decimal("1.0") == Decimal("1.00"), but a fact's digest tells them apart.
    return repr({name: getattr(reading, name) for name in PlainEnvelope.__slots__})


def same(raw: bytes) -> None:
    assert fields(decoded(raw)) == fields(model_reading(raw))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8))
def test_a_generated_envelope_reads_the_same(document: dict[str, Any]) -> None:
    same(json.dumps(_json(document)).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
@example(b'{"eventType": NaN}')
@example(b'\xef\xbb\xbf{"eventType": "x"}')
@example(b'{"eventType": "\\ud800"}')
@example(b'{"retryNumber": 1.0, "organizationId": null, "organizationID": "b"}')
@example(b'{"payload": "text", "payloads": []}')
@example(b'{"notificationId": 12.50, "payloads": {"data": {}}}')
@example(b'{"a": ' + b"1" * 5000 + b"}")
@example(b"[" * 2000 + b"]" * 2000)
@example(b'{"eventType": "a", "eventType": "b"}')
def test_any_bytes_read_the_same(raw: bytes) -> None:
    same(raw)


ITEM_FIELDS = (
    "invoiceNumber", "balanceAmount", "invoiceBalance", "totalAmount", "currency", "dueDate",
    "payerName", "emailTo", "transactionId", "paymentAmount", "paidAmount", "amount",
    "eventType", "organizationId", "organizationID", "other",
)  # fmt: skip
item_values = st.one_of(
    scalars,
    st.sampled_from(["USD", "usd", "EURO", "2026-12-31", " 2026-02-29 ", "2026-13-01", "12.50"]),
    st.decimals(min_value=0, max_value=10**14, places=2),
    st.decimals(allow_nan=True, allow_infinity=True),
)


def item_reading(read: Any, item: dict[str, Any]) -> str:
    try:
        invoice = read(item, 0)
    except UnusableBody as refusal:
        return f"refused: {refusal}"
    # repr, not ==: a fact's digest tells Decimal("1.0") from Decimal("1.00").
    return repr({name: getattr(invoice, name) for name in PlainInvoiceData.__slots__})


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(ITEM_FIELDS), item_values, max_size=10))
@example({"invoiceNumber": "INV-1", "balanceAmount": Decimal("102.00"), "currency": "USD",
          "dueDate": "2023-06-25", "organizationID": "invoicetest"})  # fmt: skip
@example({"invoiceNumber": "INV-1", "balanceAmount": None, "invoiceBalance": "5"})
@example({"invoiceNumber": "INV-1", "amount": "7.5", "paidAmount": "8"})
def test_an_invoice_item_reads_the_same(item: dict[str, Any]) -> None:
    assert item_reading(decode_invoice_data, item) == item_reading(read_invoice_data, item)


short_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
plausible_item = st.fixed_dictionaries(
    {"invoiceNumber": short_text.filter(str.strip) | st.integers(0, 10**9)},
    optional={
        "balanceAmount": st.decimals(0, 10**9, places=2) | st.decimals(0, 10**6, places=2).map(str),
        "invoiceBalance": st.decimals(0, 10**9, places=3) | st.none(),
        "totalAmount": st.decimals(0, 10**9, places=2) | st.integers(0, 10**6) | st.just(""),
        "currency": st.sampled_from(["USD", "EUR", "usd", "", " GBP "]) | st.none(),
        "dueDate": st.dates().map(str) | st.just("") | st.none(),
        "payerName": short_text | st.none(),
        "emailTo": short_text,
        "transactionId": short_text | st.integers(0, 10**12),
        "paymentAmount": st.decimals(0, 10**6, places=2).map(str),
        "amount": st.decimals(0, 10**6, places=1),
        "eventType": st.just("invoicing.customer.invoice.paid"),
        "organizationId": short_text,
        "organizationID": short_text | st.none(),
    },
)


@settings(max_examples=400, deadline=None)
@given(plausible_item)
def test_a_plausible_invoice_item_reads_the_same(item: dict[str, Any]) -> None:
    assert item_reading(decode_invoice_data, item) == item_reading(read_invoice_data, item)
