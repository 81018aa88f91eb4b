"""Collections per period whose days begin at midnight in a zone other than UTC, on PostgreSQL.

A period (a day, a week, a month) in such a zone begins and ends within UTC days. The UTC days
it covers whole are summed from the daily aggregate (report_daily_collections); only the UTC
days its first and last instants split are read from the collections themselves. Both are
summed to the period in SQL, so the answer is a few rows per currency, and the collections read
are those of two UTC days per period at most, not those of the whole range.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.identity import OrganizationScope
from service.domain.reports import Interval, period_days, period_of, start_of_day
from service.store.exact_sums import PartialSum

ZERO = Decimal(0)
# The ranges are bound as arrays: one statement per source, whatever the number of periods.
WHOLE_DAYS = text("""
SELECT c.currency, p.period, sum(c.collections), sum(c.without_amount), sum(c.amount),
       sum(c.provisional_amount)
FROM unnest(CAST(:firsts AS integer[]), CAST(:lasts AS integer[]), CAST(:periods AS integer[]))
     AS p(first_day, last_day, period)
JOIN report_daily_collections AS c ON c.day BETWEEN p.first_day AND p.last_day
WHERE CAST(:organizations AS varchar[]) IS NULL
   OR c.organization_id = ANY(CAST(:organizations AS varchar[]))
GROUP BY c.currency, p.period
""")
SPLIT_DAYS = text("""
SELECT c.currency, p.period, count(*), count(*) FILTER (WHERE c.amount IS NULL), sum(c.amount),
       sum(c.amount) FILTER (WHERE c.provisional)
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]),
            CAST(:periods AS integer[])) AS p(starts, ends, period)
JOIN invoice_collections AS c ON c.collected_at >= p.starts AND c.collected_at < p.ends
WHERE CAST(:organizations AS varchar[]) IS NULL
   OR c.organization_id = ANY(CAST(:organizations AS varchar[]))
GROUP BY c.currency, p.period
""")


def answers(start: date, end: date) -> bool:
    """Whether the range lies where every period boundary is an instant (not at the ends of
    the calendar, where a zone's midnight may fall outside datetime's range)."""
    return start.year > 1 and end.year < 9999


async def collections_in_zone(
    connection: AsyncConnection,
    start: date,
    end: date,
    interval: Interval,
    organizations: OrganizationScope,
    zone: tzinfo,
) -> dict[tuple[str | None, date], PartialSum]:
    """Per (currency, first day of its period in ``zone``) from ``start`` to ``end``:
    collections and their known sum."""
    whole: dict[str, list[Any]] = {"firsts": [], "lasts": [], "periods": []}
    split: dict[str, list[Any]] = {"starts": [], "ends": [], "periods": []}
    for first_day, begins, ends in _periods(start, end, interval, zone):
        first_whole, after_whole = _utc_midnight_from(begins), _utc_midnight_until(ends)
        period = first_day.toordinal()
        if first_whole < after_whole:
            whole["firsts"].append(first_whole.date().toordinal())
            whole["lasts"].append(after_whole.date().toordinal() - 1)
            whole["periods"].append(period)
            pieces = [(begins, first_whole), (after_whole, ends)]
        else:
            pieces = [(begins, ends)]
        for piece_start, piece_end in pieces:
            if piece_start < piece_end:
                split["starts"].append(piece_start)
                split["ends"].append(piece_end)
                split["periods"].append(period)
    found: dict[tuple[str | None, date], PartialSum] = {}
    for statement, ranges in ((WHOLE_DAYS, whole), (SPLIT_DAYS, split)):
        if not ranges["periods"]:
            continue
        named = [organizations] if isinstance(organizations, str) else organizations
        parameters = {**ranges, "organizations": None if named is None else sorted(named)}
        for row in await connection.execute(statement, parameters):
            key = (row[0] or None, date.fromordinal(row[1]))
            partial = PartialSum(int(row[2]), int(row[3]), row[4] or ZERO, row[5] or ZERO)
            found[key] = found.get(key, PartialSum()) + partial
    return {key: partial for key, partial in found.items() if partial.rows}


def _periods(
    start: date, end: date, interval: Interval, zone: tzinfo
) -> list[tuple[date, datetime, datetime]]:
    """Each period from ``start`` to ``end`` (clipped to them): its first day, and the instants
    it begins and ends (exclusive) at."""
    periods = []
    day = start
    while day <= end:
        first, last = period_days(period_of(day, interval), interval)
        last = min(last, end)
        begins, ends = start_of_day(day, zone), start_of_day(last + timedelta(days=1), zone)
        assert begins is not None and ends is not None  # within answers()' range
        periods.append((first, begins, ends))
        day = last + timedelta(days=1)
    return periods


def _utc_midnight_from(instant: datetime) -> datetime:
    """The first UTC midnight at or after ``instant``."""
    midnight = datetime.combine(instant.astimezone(UTC).date(), time(), UTC)
    return midnight if midnight == instant else midnight + timedelta(days=1)


def _utc_midnight_until(instant: datetime) -> datetime:
    """The last UTC midnight at or before ``instant``."""
    return datetime.combine(instant.astimezone(UTC).date(), time(), UTC)
