"""The report vocabulary: aging buckets by days past due, and the periods collections are
summed over. Pure: the read side turns the same rules into SQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Interval = Literal["day", "week", "month"]
AGING_BUCKETS = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")


def aging_rules(as_of: date) -> dict[str, Callable[[date | None], bool]]:
    """Each aging bucket's rule on a due date in hand (None: no due date), by days past
    due on ``as_of``."""
    days_30, days_60, days_90 = (days_before(as_of, days) for days in (30, 60, 90))
    return {
        "noDueDate": lambda due: due is None,
        "current": lambda due: due is not None and due >= as_of,
        "days1To30": lambda due: due is not None and days_30 <= due < as_of,
        "days31To60": lambda due: due is not None and days_60 <= due < days_30,
        "days61To90": lambda due: due is not None and days_90 <= due < days_60,
        "over90": lambda due: due is not None and due < days_90,
    }


def days_before(day: date, days: int) -> date:
    """``day`` less ``days``, or the first day there is (no invoice is due before it)."""
    return day - timedelta(days=days) if day - date.min >= timedelta(days=days) else date.min


def start_of_day_after(day: date, zone: tzinfo = UTC) -> datetime | None:
    """Midnight after ``day`` in ``zone``, in UTC; None after the last day there is (no
    instant follows it)."""
    return None if day == date.max else start_of_day(day + timedelta(days=1), zone)


def start_of_day(day: date, zone: tzinfo) -> datetime | None:
    """The first instant of ``day`` in ``zone``, in UTC; None beyond the last instant there
    is (the last day's midnight in a zone east of UTC is still within datetime's range)."""
    try:
        return datetime.combine(day, time(), zone).astimezone(UTC)
    except OverflowError:
        return None if day.year > 1 else datetime.min.replace(tzinfo=UTC)


def period_days(label: str, interval: Interval) -> tuple[date, date]:
    """The first and last day of the period ``period_of`` labelled ``label``."""
    if interval == "day":
        day = date.fromisoformat(label)
        return day, day
    if interval == "week":
        monday = date.fromisoformat(label)
        return monday, min(monday, date.max - timedelta(days=6)) + timedelta(days=6)
    first = date.fromisoformat(f"{label}-01")
    if first.month == 12:  # (year 9999 has no following month to count back from)
        return first, date(first.year, 12, 31)
    return first, date(first.year, first.month + 1, 1) - timedelta(days=1)


def period_of(day: date, interval: Interval) -> str:
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday it starts
    # Not strftime("%Y"): it does not pad a year before 1000 to four digits on every platform.
    return f"{day.year:04d}-{day.month:02d}"


def is_utc(zone: tzinfo) -> bool:
    return zone is UTC or getattr(zone, "key", None) == "UTC"
