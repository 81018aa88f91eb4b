"""The first and last day of each collections period, at the ends of the calendar too, and the
aging bucket of a due date."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.domain.reports import AGING_BUCKETS, Interval, aging_bounds, period_days, period_of
from service.store.views.report_reads import NO_DUE_DATE_BUCKET, DueDateBuckets, period_start


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


@given(day=st.dates(), interval=st.sampled_from(["day", "week", "month"]))
def test_a_period_starts_on_the_first_day_of_the_period_it_is_labelled_with(
    day: date, interval: Interval
) -> None:
    first, _last = period_days(period_of(day, interval), interval)
    assert period_start(day, interval) == first


@given(as_of=st.dates(), due=st.none() | st.dates())
def test_the_aging_bounds_put_a_due_date_in_the_bucket_of_its_days_past_due(
    as_of: date, due: date | None
) -> None:
    bucket = DueDateBuckets(aging_bounds(as_of)).of(due)
    if due is None:
        assert bucket == NO_DUE_DATE_BUCKET
        return
    days_past_due = (as_of - due).days
    limits = [0, 30, 60, 90]
    expected = next((at for at, limit in enumerate(limits) if days_past_due <= limit), 4)
    assert AGING_BUCKETS[bucket] == AGING_BUCKETS[expected]
