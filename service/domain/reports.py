"""The report vocabulary: aging buckets by days past due, and the periods collections are
summed over. Pure: the read side turns the same rules into SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Interval = Literal["day", "week", "month"]
AGING_BUCKETS = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")


def aging_bounds(as_of: date) -> tuple[date, ...]:
    """The first due date of each aging bucket but the last two, latest first: a due date is
    ``current`` from the first bound on, ``days1To30`` from the second up to the first, and
    so on; ``over90`` before the last bound, ``noDueDate`` without one (AGING_BUCKETS' order)."""
    return (as_of, *(days_before(as_of, days) for days in (30, 60, 90)))


def aging_bucket(due: date | None, as_of: date) -> str:
    """The aging bucket of one due date at the end of ``as_of``."""
    if due is None:
        return "noDueDate"
    for bucket, first_due in zip(AGING_BUCKETS, aging_bounds(as_of), strict=False):
        if due >= first_due:
            return bucket
    return "over90"


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
