"""Exact money parsing: amounts are Decimal, never float, and always travel with a currency."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A plain decimal number as providers write it: optional sign, ASCII digits, optional
# fraction (\d would admit "١٢", which Decimal() reads as 12, and "²", which it refuses).
# Exponents, "NaN" and "Infinity" are accepted by Decimal() but are never amounts. At most
# six decimals, so every amount is a whole number of micro-units (how read models store it).
_AMOUNT_PATTERN = re.compile(r"-?[0-9]{1,13}(\.[0-9]{1,6})?")
_CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")


class InvalidAmount(ValueError):
    """An amount that is not an exact, finite, non-negative decimal number."""


class InvalidCurrency(ValueError):
    """A currency that is not a three-letter ISO 4217 code."""


def parse_amount(value: object) -> Decimal:
    """Parse an amount written as a JSON string or a JSON number, exactly.

    JSON numbers must already have been parsed with ``parse_float=Decimal``: a ``float``
    here means precision may already be lost, so it is refused rather than trusted.
    """
    if isinstance(value, bool | float):
        raise InvalidAmount(f"amount {value!r} is not an exact decimal")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"amount {value} is not finite")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidAmount(f"amount must be a string or a number, not {type(value).__name__}")
    if not _AMOUNT_PATTERN.fullmatch(text):
        raise InvalidAmount(f"amount {text[:40]!r} is not a plain decimal number")
    try:
        amount = Decimal(text)
    except InvalidOperation as error:  # pragma: no cover - the pattern admits only valid numbers
        raise InvalidAmount(f"amount {text!r} is not a number") from error
    if amount < 0:
        raise InvalidAmount(f"amount {text} is negative")
    # "-0.00" is zero: without its sign, or it would be stored and shown as "-0.00".
    return amount.copy_abs()


def parse_optional_amount(value: object) -> Decimal | None:
    """An amount, or None where the provider left it out (absent or an empty string)."""
    return None if value is None or value == "" else parse_amount(value)


def parse_currency(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCurrency(f"currency must be a string, not {type(value).__name__}")
    code = value.strip().upper()
    if not _CURRENCY_PATTERN.fullmatch(code):
        raise InvalidCurrency(f"currency {value[:10]!r} is not a three-letter code")
    return code


MICROS_PER_UNIT = 1_000_000
# ISO 4217 minor-unit exponents that differ from the usual two.
_ZERO_DECIMAL_CURRENCIES = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
    "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
]  # fmt: skip
_THREE_DECIMAL_CURRENCIES = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
_EXPONENT_BY_CURRENCY = {
    **dict.fromkeys(_ZERO_DECIMAL_CURRENCIES, 0),
    **dict.fromkeys(_THREE_DECIMAL_CURRENCIES, 3),
    "CLF": 4,
    "UYW": 4,
}


def currency_exponent(currency: str) -> int:
    return _EXPONENT_BY_CURRENCY.get(currency, 2)


def to_micros(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -6:
        return int(amount.scaleb(6))  # exact: at most six decimals
    micros = amount * MICROS_PER_UNIT
    if micros != micros.to_integral_value():
        raise InvalidAmount(f"amount {amount} has more than six decimals")
    return int(micros)


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_UNIT


def format_amount(amount: Decimal, currency: str | None) -> str:
    """A decimal string with the currency's exponent (``102.5`` USD is ``"102.50"``).

    An amount more precise than its currency allows is shown in full, never rounded.
    """
    if currency is None:
        return format(amount.normalize(), "f")
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    quantized = amount.quantize(quantum)
    return format(quantized if quantized == amount else amount.normalize(), "f")
