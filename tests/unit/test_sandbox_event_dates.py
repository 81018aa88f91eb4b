"""Webhook event dates fall before, on or after their history entry, as Cybersource's may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.sandbox.event_dates import EventDateOrder, EventDates, EventTiming

HISTORY_DATE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_by_default_every_case_occurs_within_the_bounds_and_a_seed_repeats_them() -> None:
    timing = EventTiming(offset_seconds_min=0.001, offset_seconds_max=120, seed=5)
    dates = EventDates(timing)
    offsets = [dates.event_date(HISTORY_DATE) - HISTORY_DATE for _ in range(300)]
    assert any(o < timedelta(0) for o in offsets) and any(o > timedelta(0) for o in offsets)
    assert timedelta(0) in offsets
    assert all(abs(o) <= timedelta(seconds=120) for o in offsets)
    assert any(abs(o) < timedelta(seconds=1) for o in offsets if o)  # milliseconds...
    assert any(abs(o) > timedelta(seconds=60) for o in offsets)  # ...to minutes
    again = EventDates(timing)
    assert [again.event_date(HISTORY_DATE) - HISTORY_DATE for _ in range(300)] == offsets


@pytest.mark.parametrize("order", list(EventDateOrder))
def test_a_forced_order_always_holds(order: EventDateOrder) -> None:
    dates = EventDates(EventTiming(order=order, seed=1))
    for _ in range(50):
        offset = dates.event_date(HISTORY_DATE) - HISTORY_DATE
        expected = {EventDateOrder.BEFORE: offset < timedelta(0),
                    EventDateOrder.EQUAL: offset == timedelta(0),
                    EventDateOrder.AFTER: offset > timedelta(0)}[order]  # fmt: skip
        assert expected
        assert offset % timedelta(milliseconds=1) == timedelta(0)  # whole milliseconds


def test_bounds_must_be_ordered_and_positive() -> None:
    with pytest.raises(ValueError):
        EventTiming(offset_seconds_min=2, offset_seconds_max=1)
