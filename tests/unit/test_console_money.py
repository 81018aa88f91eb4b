"""Amounts in the console are written for people, by their currency, and never rounded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.fronts.console.views import money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("1829.5"), "USD", "1,829.50 USD"),
        (Decimal("60.000000"), "EUR", "60.00 EUR"),  # as PostgreSQL answers NUMERIC(38, 6)
        (Decimal("115010.000000"), "JPY", "115,010 JPY"),
        (Decimal("12.345"), "KWD", "12.345 KWD"),
        (Decimal("1234567.8"), "BHD", "1,234,567.800 BHD"),
        (Decimal("0.000001"), "EUR", "0.000001 EUR"),  # more decimals than the currency's: kept
        (Decimal("1E+3"), "USD", "1,000.00 USD"),
        (Decimal("-5"), "USD", "-5.00 USD"),
        (Decimal("7"), None, "7.00"),
    ],
)
def test_an_amount_shows_its_currencys_decimals_and_thousands(
    amount: Decimal, currency: str | None, shown: str
) -> None:
    written = str(money(amount, currency))
    assert f">{shown}</span>" in written
    assert f'title="{amount:f}"' in written


def test_an_unknown_amount_says_so() -> None:
    assert str(money(None, "USD")) == "unknown"


def test_a_currency_code_is_escaped() -> None:
    assert "<script>" not in str(money(Decimal(1), "<script>"))
