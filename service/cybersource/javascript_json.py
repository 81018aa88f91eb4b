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


def reserialized_field(text: str | bytes, names: tuple[str, ...]) -> bytes | None:
    """``JSON.stringify(JSON.parse(text)[name])`` as UTF-8, for the first of ``names`` the
    top-level object has; None when it has none, when that field is null, or when the text is
    no object.

    Raises what ``loads`` raises for text that is not JSON, and RecursionError when nested
    too deep. Mostly done by the json module's C parser and encoder: a parsed value prints
    the same in Python as in JavaScript when every number is an integer of at most 2**53
    (made an ``int``) or a non-integral double of at least 1e-4 (``float.__repr__`` is then
    ECMAScript's Number::toString, digit for digit), no string holds a lone surrogate, and
    integer-like keys are put first. A document where that does not hold is done again by
    ``stringify``, in Python, about ten times slower.
    """
    try:
        document = json.loads(
            text,
            parse_int=_plain_integer,
            parse_float=_plain_double,
            parse_constant=_refuse_constant,
            object_pairs_hook=_javascript_ordered,
        )
        field = _first_field(document, names)
        if field is _ABSENT or field is None:
            return None
        return json.dumps(
            field, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except _NotPlain:
        pass
    except UnicodeEncodeError:
        pass  # a lone surrogate, which JSON.stringify escapes and UTF-8 cannot carry
    field = _first_field(loads(text), names)
    return None if field is _ABSENT or field is None else stringify(field).encode()


_ABSENT = object()


def _first_field(document: Any, names: tuple[str, ...]) -> Any:
    if isinstance(document, dict):
        for name in names:
            if name in document:
                return document[name]
    return _ABSENT


class _NotPlain(Exception):
    """The document holds what only ``stringify`` prints as JavaScript does."""


# Every integer up to this is a double exactly, and ECMAScript prints all its digits.
_EXACT_INTEGER_MAX = 2**53
# At and above this (and below 2**53) a non-integral double prints the same with repr() as in
# ECMAScript; below it, Python switches to exponents first (1e-05 against 0.00001).
_PLAIN_FRACTION_MIN = 1e-4


def _plain_integer(text: str) -> int:
    value = int(text)
    if abs(value) > _EXACT_INTEGER_MAX:
        raise _NotPlain
    return value


def _plain_double(text: str) -> int | float:
    value = float(text)
    if value.is_integer():
        if abs(value) > _EXACT_INTEGER_MAX:
            raise _NotPlain
        return int(value)  # 1.0 prints as 1, and -0.0 as 0, as in ECMAScript
    if not math.isfinite(value) or abs(value) < _PLAIN_FRACTION_MIN:
        raise _NotPlain
    return value


def _javascript_ordered(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if any(_is_array_index(key) for key in obj):
        return {key: obj[key] for key in _property_order(obj)}
    return obj


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
