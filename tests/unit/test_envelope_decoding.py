"""The receiver's one-decode reading of an envelope (msgspec) is the model's reading of the
parsed JSON: the same envelope for every body, the same refusal and message for every other."""

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
)
from service.cybersource.envelope_decoding import PlainEnvelope, decode_envelope

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
