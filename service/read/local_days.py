"""The day of a stored instant in a time zone, as the collections report groups by it."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, func

from service.domain.reports import is_utc


def local_day(instant: ColumnElement[Any], zone: tzinfo, postgresql: bool) -> ColumnElement[Any]:
    """The day of a stored instant in ``zone``: PostgreSQL converts it with its own time
    zone database; SQLite has none, so there the instant (to the second) is the key and
    its day in ``zone`` is found here (SQLite sums in Python, reading every row anyway)."""
    if is_utc(zone):
        return utc_day(instant, postgresql)
    if postgresql:
        return func.date(func.timezone(_zone_name(zone), instant))
    return func.substr(instant, 1, 19)


def utc_day(instant: ColumnElement[Any], postgresql: bool) -> ColumnElement[Any]:
    """The UTC day of a stored instant (sessions and stored instants are UTC)."""
    if postgresql:
        return func.date(instant)
    # SQLite's date() rounds to milliseconds: 23:59:59.9996 would fall on the next day
    # (and on 9999-12-31, on none). Its stored text starts with the day itself.
    return func.substr(instant, 1, 10)


def day_of_text(text: str, zone: tzinfo) -> date:
    """The day in ``zone`` of SQLite's text for a UTC instant (or of its day, in UTC)."""
    if len(text) == 10:
        return date.fromisoformat(text)
    instant = datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
    try:
        return instant.astimezone(zone).date()
    except OverflowError:  # beyond year 9999 or before year 1 in that zone
        return instant.date()


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", zone))
