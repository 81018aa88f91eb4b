"""When a webhook says its event happened, against the invoice history's date for the same
change. Cybersource stamps the two apart, and neither one is promised to come first: a webhook's
``eventDate`` may be before, equal to or after the history entry's date, by milliseconds to
minutes. The sandbox draws that at random, from a seed, so consumers meet every case."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class EventDateOrder(StrEnum):
    BEFORE = "before"
    EQUAL = "equal"
    AFTER = "after"


@dataclass(frozen=True)
class EventTiming:
    """``order``: force one case (tests); None draws one per webhook. Offsets are drawn
    log-uniformly between the bounds, so milliseconds and minutes are both common."""

    offset_seconds_min: float = 0.001
    offset_seconds_max: float = 300.0
    seed: int | None = None
    order: EventDateOrder | None = None

    def __post_init__(self) -> None:
        if not 0 < self.offset_seconds_min <= self.offset_seconds_max:
            raise ValueError("event date offsets need 0 < minimum <= maximum")


class EventDates:
    def __init__(self, timing: EventTiming = EventTiming()) -> None:
        self._timing = timing
        self._random = random.Random(timing.seed)

    def event_date(self, history_date: datetime) -> datetime:
        order = self._timing.order or self._random.choice(list(EventDateOrder))
        if order is EventDateOrder.EQUAL:
            return history_date
        low = math.log(self._timing.offset_seconds_min)
        high = math.log(self._timing.offset_seconds_max)
        # Whole milliseconds, as both dates are written, so "before" never prints as equal.
        milliseconds = max(1, round(math.exp(self._random.uniform(low, high)) * 1000))
        offset = timedelta(milliseconds=milliseconds)
        return history_date - offset if order is EventDateOrder.BEFORE else history_date + offset
