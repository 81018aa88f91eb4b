from __future__ import annotations

from service.ingest.token_bucket import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_one_seconds_worth_at_once_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock)
    assert [bucket.try_take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.2
    assert [bucket.try_take() for _ in range(2)] == [True, False]
    clock.now += 60
    assert sum(bucket.try_take() for _ in range(20)) == 5  # never more than the burst saved


def test_a_rate_of_zero_gives_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock)
    clock.now += 3600
    assert not bucket.try_take()


def test_a_rate_below_one_per_second_still_gives_a_whole_token_in_time() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)
    assert [bucket.try_take(), bucket.try_take()] == [True, False]
    clock.now += 2
    assert bucket.try_take()
