"""JSON with Decimals written as exact JSON numbers (``247.86``, never through a float), as
Cybersource's invoice responses carry amounts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any


@dataclass(frozen=True)
class WrittenJSON:
    """A value already written by ``dumps``: inserted as it is, not written again."""

    text: str


def dumps(value: Any) -> str:
    """``value`` as compact JSON; a Decimal becomes the number its digits spell."""
    # The concrete types first: an ABC check costs more than writing a short string.
    if isinstance(value, str):
        return str(encode_basestring_ascii(value))
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, list | tuple):
        return _array(value)
    if isinstance(value, WrittenJSON):
        return value.text
    if isinstance(value, Mapping):
        return _object(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return _array(value)
    return json.dumps(value)


def _object(value: Mapping[Any, Any]) -> str:
    members = (f"{encode_basestring_ascii(str(key))}:{dumps(item)}" for key, item in value.items())
    return "{" + ",".join(members) + "}"


def _array(value: Sequence[Any]) -> str:
    return "[" + ",".join(dumps(item) for item in value) + "]"


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} has no JSON number")
    return format(value, "f")
