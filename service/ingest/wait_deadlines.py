"""Equal deadlines for many concurrent waits, kept by one timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitDeadlines:
    """Each wait ``bound`` is given ends within ``seconds``, as under ``asyncio.timeout(seconds)``:
    when its time is up the waiting task is cancelled, and the wait raises ``TimeoutError``
    (or the ``CancelledError`` of anyone else who cancelled the task too).

    ``asyncio.timeout`` makes a timer for each wait and cancels it after, which costs more than
    a webhook's body read whose body has already arrived, as nearly every one has. The waits
    here are all equally long, so their deadlines fall due in the order they began: one timer,
    armed for the oldest wait and moved on to the next when it fires, bounds them all.

    One wait per task at a time, and one event loop's waits (the server's): when waits begin on
    another loop (tests that start one per client), those of the loop before are let go.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        # Waiting tasks, each with its deadline and its count of cancel requests when it began,
        # in the order of their deadlines.
        self._waiting: dict[asyncio.Task[Any], tuple[float, int]] = {}
        # Tasks cancelled by their deadline whose wait has not yet ended, with that count.
        self._expired: dict[asyncio.Task[Any], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due_at = 0.0
        # Which timer is the armed one: a timer armed before (left on a loop moved off, which
        # may be waited on again later) finds itself let go when it fires.
        self._timer_number = 0

    async def bound(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.current_task()
        assert task is not None, "a wait is bounded inside a task"
        loop = task.get_loop()
        if loop is not self._loop:
            self._move_to(loop)
        due_at = loop.time() + self._seconds
        self._waiting[task] = (due_at, task.cancelling())
        if self._timer is None:
            self._arm(loop, due_at)
        error: BaseException | None = None
        try:
            return await awaitable
        except BaseException as raised:
            error = raised
            raise
        finally:
            if self._waiting.pop(task, None) is None and task in self._expired:
                # asyncio.timeout's own test: the deadline's cancel request is taken back, and
                # the cancellation is the deadline's unless someone else requested one too.
                cancelling = self._expired.pop(task)
                if task.uncancel() <= cancelling and type(error) is asyncio.CancelledError:
                    raise TimeoutError from error

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        # The timer of the loop before is left alone (that loop may be closed): if it ever
        # fires, it finds itself let go.
        self._timer = None
        self._timer_number += 1
        self._waiting.clear()
        self._expired.clear()
        self._loop = loop

    def _arm(self, loop: asyncio.AbstractEventLoop, due_at: float) -> None:
        self._timer_due_at = due_at
        self._timer_number += 1
        self._timer = loop.call_at(due_at, self._fire, loop, self._timer_number)

    def _fire(self, loop: asyncio.AbstractEventLoop, number: int) -> None:
        if loop is not self._loop or number != self._timer_number:  # let go since
            return
        self._timer = None
        # A timer may fire a little before its time (the loop's clock resolution): the wait
        # it was armed for is due, as asyncio.timeout's own timer would have found it.
        now = max(loop.time(), self._timer_due_at)
        while self._waiting:
            task = next(iter(self._waiting))
            due_at, cancelling = self._waiting[task]
            if due_at > now:
                self._arm(loop, due_at)
                return
            del self._waiting[task]
            self._expired[task] = cancelling
            task.cancel()
