"""``JSON.stringify(JSON.parse(text))`` as JavaScript would print it.

Cybersource's own plugins verify a webhook by HMAC-ing ``t + "." + JSON.stringify(payload)``,
so the receiver must re-serialise a parsed payload byte for byte the way JavaScript does:
no spaces, insertion order (integer-like keys first, ascending), non-ASCII unescaped, and
numbers printed by ECMAScript's Number::toString rather than Python's repr.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

_ARRAY_INDEX_MAX = 2**32 - 2


def loads(text: str | bytes) -> Any:
    """Parse JSON the way ``JSON.parse`` does: every number becomes an IEEE double."""
    return json.loads(text, parse_int=float, parse_constant=_refuse_constant)


def stringify(value: Any) -> str:
    return "".join(_chunks(value))


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _chunks(value: Any) -> Any:
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, str):
        yield _string_literal(value)
    elif isinstance(value, int | float | Decimal):
        yield number_to_string(float(value))
    elif isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _chunks(item)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, key in enumerate(_property_order(value)):
            if index:
                yield ","
            yield _string_literal(key)
            yield ":"
            yield from _chunks(value[key])
        yield "}"
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _string_literal(text: str) -> str:
    # Python's parser joins escaped surrogate pairs, so any surrogate left is a lone one.
    # Well-formed JSON.stringify (ES2019) writes it as a lowercase \u escape; left raw it
    # could not even be encoded as UTF-8.
    literal = json.dumps(text, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", literal)


def _property_order(obj: dict[str, Any]) -> list[str]:
    # ECMAScript orders integer-like keys (array indices) first, ascending, then the rest
    # in insertion order.
    indices = [key for key in obj if _is_array_index(key)]
    others = [key for key in obj if not _is_array_index(key)]
    return sorted(indices, key=int) + others


def _is_array_index(key: str) -> bool:
    return key.isdigit() and key.isascii() and str(int(key)) == key and int(key) <= _ARRAY_INDEX_MAX


def number_to_string(number: float) -> str:
    """ECMAScript Number::toString(10) for a finite double."""
    if not math.isfinite(number):
        return "null"  # JSON.stringify prints NaN and Infinity as null
    if number == 0:
        return "0"
    if number < 0:
        return "-" + number_to_string(-number)
    # repr() gives the shortest digit string that round-trips, which is what ECMAScript uses.
    _, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    k = len(digits)
    n = k + int(exponent)  # value = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exponent_text = f"e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    if k == 1:
        return digits + exponent_text
    return digits[0] + "." + digits[1:] + exponent_text
