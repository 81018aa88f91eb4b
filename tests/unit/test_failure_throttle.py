from __future__ import annotations

from service.fronts.failure_throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def test_an_address_is_throttled_after_its_failures_until_the_window_passes() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60, clock=clock)
    assert [throttle.record_failure("10.0.0.7") for _ in range(3)] == [False, False, True]
    clock.seconds += 20
    assert throttle.retry_after_seconds("10.0.0.7") == 40
    assert throttle.retry_after_seconds("10.0.0.8") is None
    clock.seconds += 40
    assert throttle.retry_after_seconds("10.0.0.7") is None
    assert throttle.record_failure("10.0.0.7") is False  # a new window, counted from one


def test_failures_spread_wider_than_the_window_never_throttle() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60, clock=clock)
    for _ in range(10):
        throttle.record_failure("10.0.0.7")
        assert throttle.retry_after_seconds("10.0.0.7") is None
        clock.seconds += 31


def test_memory_is_bounded_by_forgetting_the_address_whose_last_failure_is_oldest() -> None:
    throttle = FailureThrottle(1, 60, addresses_max=2, clock=Clock())
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"):
        throttle.record_failure(address)
    assert throttle.addresses == 2
    assert throttle.retry_after_seconds("10.0.0.2") is None  # forgotten
    assert throttle.retry_after_seconds("10.0.0.1") == 60
    assert throttle.retry_after_seconds("10.0.0.3") == 60


def test_ipv6_addresses_of_one_slash_64_are_counted_together() -> None:
    throttle = FailureThrottle(2, 60, clock=Clock())
    throttle.record_failure("2001:db8::1")
    throttle.record_failure("2001:db8::ffff:2")
    assert throttle.retry_after_seconds("2001:db8::3") == 60
    assert throttle.retry_after_seconds("2001:db8:0:1::1") is None
