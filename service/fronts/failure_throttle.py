"""A backoff on failed credential checks, per client address, in bounded memory.

An address that fails ``failures_max`` checks within ``window_seconds`` of its first failure
is answered 429 for the rest of that window, before any credential it presents is compared:
were a throttled guess still checked, the answer would go on saying whether it was right.
Successful checks are never counted nor delayed.

The count lives in this process: with several replicas an address may fail ``failures_max``
times at each. At most ``addresses_max`` addresses are remembered; past that the one whose
latest failure is oldest is forgotten. IPv6 clients are counted per /64 (one host usually
holds a whole one).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ADDRESSES_MAX = 10_000
IPV6_PREFIX_LENGTH = 64


@dataclass(slots=True)
class _Failures:
    first_at: float  # monotonic seconds
    count: int


class FailureThrottle:
    def __init__(
        self,
        failures_max: int,
        window_seconds: float,
        *,
        addresses_max: int = ADDRESSES_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert failures_max >= 1 and window_seconds > 0 and addresses_max >= 1
        self._failures_max = failures_max
        self._window_seconds = window_seconds
        self._addresses_max = addresses_max
        self._clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after_seconds(self, address: str | None) -> int | None:
        """Whole seconds until ``address`` may try again; None when it may try now."""
        key = client_key(address)
        failures = self._by_address.get(key)
        if failures is None:
            return None
        remaining = failures.first_at + self._window_seconds - self._clock()
        if remaining <= 0:
            del self._by_address[key]
            return None
        if failures.count < self._failures_max:
            return None
        return max(1, math.ceil(remaining))

    def record_failure(self, address: str | None) -> bool:
        """Count a failed check; True when it is the one that throttles ``address``."""
        key = client_key(address)
        now = self._clock()
        failures = self._by_address.get(key)
        if failures is None or now - failures.first_at >= self._window_seconds:
            failures = _Failures(now, 0)
            self._by_address[key] = failures
        failures.count += 1
        self._by_address.move_to_end(key)
        while len(self._by_address) > self._addresses_max:
            self._by_address.popitem(last=False)
        return failures.count == self._failures_max

    @property
    def addresses(self) -> int:
        return len(self._by_address)


def client_key(address: str | None) -> str:
    """The unit an address is counted in: itself, or its /64 for IPv6."""
    if address is None:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX_LENGTH}", strict=False))
    return str(parsed)
