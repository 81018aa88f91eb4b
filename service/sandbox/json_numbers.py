"""JSON with Decimals written as exact JSON numbers (``247.86``, never through a float), as
Cybersource's invoice responses carry amounts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    """``value`` as compact JSON; a Decimal becomes the number its digits spell."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON number")
        return format(value, "f")
    if isinstance(value, Mapping):
        members = (f"{json.dumps(str(key))}:{dumps(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    return json.dumps(value)
