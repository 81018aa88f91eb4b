"""The first and last day of each collections period, at the ends of the calendar too."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.domain.reports import Interval, period_days, period_of


@given(day=st.dates(), interval=st.sampled_from(["day", "week", "month"]))
def test_every_day_lies_within_the_period_it_is_labelled_with(
    day: date, interval: Interval
) -> None:
    first, last = period_days(period_of(day, interval), interval)
    assert first <= day <= last
    assert period_of(first, interval) == period_of(last, interval) == period_of(day, interval)
    if last < date.max:
        assert period_of(last + timedelta(days=1), interval) != period_of(day, interval)


def test_months_end_on_their_last_day() -> None:
    assert period_days("2024-02", "month") == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_days("9999-12", "month") == (date(9999, 12, 1), date(9999, 12, 31))
    assert period_days("2026-03-16", "week") == (date(2026, 3, 16), date(2026, 3, 22))
