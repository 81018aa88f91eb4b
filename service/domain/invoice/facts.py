"""A fact as the fold reads it: an event, its decoded payload, and its place in the fold's
order (provider time, then store position)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from service.domain.events import RecordedEvent
from service.domain.payloads import Payload, decode

# How far a notification's eventDate may stray from the history entry of the same payment:
# Cybersource stamps them independently, milliseconds to minutes apart.
NOTIFICATION_LAG_MAX = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class _Fact:
    event: RecordedEvent
    payload: Payload
    # (provider time, store position), computed once: the fold sorts and compares by it often.
    key: tuple[datetime, int]

    @classmethod
    def of(cls, event: RecordedEvent) -> _Fact:
        return cls(event, decode(event), (event.occurred_at, event.position))

    def order(self) -> tuple[datetime, int]:
        return self.key

    @property
    def moment(self) -> datetime:
        return self.event.occurred_at


_FACT_ORDER = attrgetter("key")  # _Fact.order without a method call per comparison key
