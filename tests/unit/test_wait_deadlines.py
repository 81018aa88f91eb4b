"""Equal deadlines on one timer cut each wait off as asyncio.timeout would."""

from __future__ import annotations

import asyncio

import pytest

from service.ingest.wait_deadlines import WaitDeadlines

SECONDS = 0.2
# Timers fire late by the loop's scheduling, never early.
LATENESS_SECONDS_MAX = 0.1


async def _value_after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def _seconds_until_cut_off(deadlines: WaitDeadlines, wait_seconds: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await deadlines.bound(_value_after(wait_seconds, "late"))
    return loop.time() - started


@pytest.mark.anyio
async def test_a_wait_that_ends_in_time_gives_its_value() -> None:
    deadlines = WaitDeadlines(SECONDS)
    assert await deadlines.bound(_value_after(0.01, "body")) == "body"
    assert await deadlines.bound(_value_after(0, "again")) == "again"


@pytest.mark.anyio
async def test_each_of_many_staggered_waits_is_cut_off_at_its_own_deadline() -> None:
    deadlines = WaitDeadlines(SECONDS)

    async def begin_after(delay_seconds: float, wait_seconds: float) -> float:
        await asyncio.sleep(delay_seconds)
        return await _seconds_until_cut_off(deadlines, wait_seconds)

    async def in_time(delay_seconds: float) -> str:
        await asyncio.sleep(delay_seconds)
        return await deadlines.bound(_value_after(SECONDS / 4, "in time"))

    cut_off = asyncio.gather(*(begin_after(delay, 10) for delay in (0, 0.05, 0.07, 0.15)))
    answered = asyncio.gather(*(in_time(delay) for delay in (0, 0.06, 0.2)))
    for seconds in await cut_off:
        assert SECONDS <= seconds < SECONDS + LATENESS_SECONDS_MAX
    assert await answered == ["in time"] * 3
    # The timer moves on to waits begun after the last one fell due.
    assert SECONDS <= await _seconds_until_cut_off(deadlines, 10) < SECONDS + LATENESS_SECONDS_MAX


@pytest.mark.anyio
async def test_a_task_cut_off_is_not_left_cancelled() -> None:
    deadlines = WaitDeadlines(0.01)
    await _seconds_until_cut_off(deadlines, 10)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert await _value_after(0.01, "goes on") == "goes on"


@pytest.mark.anyio
async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    deadlines = WaitDeadlines(SECONDS)
    waiting = asyncio.create_task(deadlines.bound(_value_after(10, "late")))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The deadline still bounds the waits after it.
    assert SECONDS <= await _seconds_until_cut_off(deadlines, 10) < SECONDS + LATENESS_SECONDS_MAX


@pytest.mark.anyio
async def test_an_error_of_the_wait_itself_is_raised_as_it_was() -> None:
    deadlines = WaitDeadlines(SECONDS)

    async def failing() -> str:
        raise LookupError("no body")

    with pytest.raises(LookupError):
        await deadlines.bound(failing())
    assert SECONDS <= await _seconds_until_cut_off(deadlines, 10) < SECONDS + LATENESS_SECONDS_MAX


def test_waits_on_a_new_event_loop_are_bounded_too() -> None:
    deadlines = WaitDeadlines(0.05)
    for _ in range(2):  # as tests that start a loop per client do
        asyncio.run(_seconds_until_cut_off(deadlines, 10))


def test_a_loop_waited_on_again_is_not_cut_off_by_its_earlier_timer() -> None:
    # A's first timer outlives the move to B; back on A, a wait begun after it must still
    # get its whole bound, not be cut off when that earlier timer fires.
    deadlines = WaitDeadlines(0.5)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(deadlines.bound(_value_after(0, "quick")))
        second.run_until_complete(deadlines.bound(_value_after(0, "quick")))
        first.run_until_complete(asyncio.sleep(0.3))
        seconds = first.run_until_complete(_seconds_until_cut_off(deadlines, 10))
        assert 0.5 <= seconds < 0.5 + LATENESS_SECONDS_MAX
    finally:
        first.close()
        second.close()
