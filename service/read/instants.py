"""Instants, days and time zones as the fronts accept them: RFC 3339 and IANA names only."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

# RFC 3339 (OpenAPI's date-time and date formats), and nothing else: an epoch number, a
# week date or an instant without an offset is refused rather than guessed at.
_INSTANT_PATTERN = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,20})?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT_EXAMPLE = "an ISO-8601 instant with an offset, e.g. 2026-01-31T00:00:00Z"


def parse_instant(value: object) -> datetime:
    """An RFC 3339 instant, in UTC; ValueError names the rule it breaks."""
    match = _INSTANT_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be {_INSTANT_EXAMPLE}")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = (match.group(7) or ".0")[1:7].ljust(6, "0")  # beyond microseconds: truncated
    try:
        offset = timedelta()
        if match.group(8) is None:
            sign = -1 if match.group(9) == "-" else 1
            offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        zone = timezone(offset)  # ValueError beyond ±24 h
        moment = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=zone)
        return moment.astimezone(UTC)  # OverflowError before year 1 or after 9999 in UTC
    except ValueError:
        raise ValueError(f"must be {_INSTANT_EXAMPLE}, a real date and time") from None
    except OverflowError:
        raise ValueError("must fall within the years 1 to 9999 in UTC") from None


def parse_day(value: object) -> date:
    if not isinstance(value, str) or not _DAY_PATTERN.fullmatch(value):
        raise ValueError("must be an ISO-8601 date, e.g. 2026-01-31")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 date, e.g. 2026-01-31, a real day") from None


@cache
def _zone_names() -> frozenset[str]:
    # Only the IANA names the installed database lists: ZoneInfo alone would also open a
    # path-like key it was given.
    return frozenset(available_timezones())


def parse_zone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or value not in _zone_names():
        raise ValueError("must be an IANA time zone name, e.g. Europe/Paris or UTC")
    return ZoneInfo(value)
