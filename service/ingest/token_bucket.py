"""A token bucket that answers at once: take a token now, or learn that none is left."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate_per_second`` tokens a second, at most ``burst`` saved up (default: one second's)."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_second
        self._burst = max(rate_per_second, 1.0) if burst is None else burst
        self._clock = clock
        self._tokens = self._burst if rate_per_second > 0 else 0.0
        self._updated = clock()

    def try_take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
