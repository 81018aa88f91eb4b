from __future__ import annotations

import json
from decimal import Decimal

import pytest

from service.domain.money import (
    InvalidAmount,
    InvalidCurrency,
    format_amount,
    from_micros,
    parse_amount,
    parse_currency,
    to_micros,
)


@pytest.mark.parametrize(
    ("json_text", "expected"),
    [
        ('"102.00"', Decimal("102.00")),
        ("102.00", Decimal("102.00")),
        ("247.86", Decimal("247.86")),
        ("0.1", Decimal("0.1")),
        ("5", Decimal("5")),
        ('" 12.5 "', Decimal("12.5")),
        ('"0"', Decimal("0")),
        ('"-0.00"', Decimal("0.00")),  # unsigned: never stored or shown as "-0.00"
        ("-0", Decimal("0")),
    ],
)
def test_amounts_parse_exactly_from_json_strings_and_numbers(
    json_text: str, expected: Decimal
) -> None:
    amount = parse_amount(json.loads(json_text, parse_float=Decimal))
    assert amount == expected
    assert amount.as_tuple() == expected.as_tuple()  # the scale is kept: 102.00 stays 102.00
    assert not amount.is_signed()


@pytest.mark.parametrize(
    "value",
    ["abc", "", "1e3", "NaN", "Infinity", "-1.00", "1,000.00", "1.", ".5", True, None, [1], 0.1],
)
def test_anything_but_a_plain_non_negative_decimal_is_not_an_amount(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(value)


def test_a_float_is_refused_because_its_precision_is_already_lost() -> None:
    with pytest.raises(InvalidAmount, match="exact"):
        parse_amount(0.1)


def test_currencies_are_three_letter_codes() -> None:
    assert parse_currency("usd") == "USD"
    for bad in ("US", "DOLLAR", "U$D", 840):
        with pytest.raises(InvalidCurrency):
            parse_currency(bad)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("102.5", "USD", "102.50"),
        ("102", "USD", "102.00"),
        ("1500", "JPY", "1500"),
        ("1.2", "KWD", "1.200"),
        ("0.005", "USD", "0.005"),  # more precise than USD: shown whole, not rounded
        ("7.10", None, "7.1"),
    ],
)
def test_amounts_are_shown_with_their_currency_exponent(
    amount: str, currency: str | None, shown: str
) -> None:
    assert format_amount(Decimal(amount), currency) == shown


def test_micro_units_round_trip_exactly() -> None:
    for text in ("0", "0.000001", "102.10", "9999999999999.999999"):
        assert from_micros(to_micros(Decimal(text))) == Decimal(text)
    with pytest.raises(InvalidAmount):
        parse_amount("1.0000001")
