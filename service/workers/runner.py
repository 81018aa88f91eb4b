"""The background workers beside the server, started together and stopped within a deadline.

Each worker is an asyncio task that watches a stop event; it gets a context (a LISTEN
connection, an HTTP client) that lives as long as it does. Stopping sets every stop event at
once, waits for the tasks until the deadline, cancels those still running, and only then
closes their contexts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass

import structlog

log = structlog.get_logger("service.workers")

# How long a cancelled worker gets to unwind (roll back, release its lease) before it is
# abandoned; a cancelled database call returns as soon as the driver notices.
CANCELLATION_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RunningWorker:
    name: str
    task: asyncio.Task[None]
    stop: asyncio.Event


# A worker factory enters whatever the worker needs and yields its running task; leaving the
# context (after the task ended) releases those resources.
WorkerFactory = Callable[[], AbstractAsyncContextManager[RunningWorker | None]]


class BackgroundWorkers:
    def __init__(self, factories: list[WorkerFactory]) -> None:
        self._factories = factories
        self._stack: AsyncExitStack | None = None
        self._running: list[RunningWorker] = []

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(worker.name for worker in self._running if not worker.task.done())

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        self._stack = stack
        for factory in self._factories:
            worker = await stack.enter_async_context(factory())
            if worker is not None:
                self._running.append(worker)
        log.info("workers.started", workers=[worker.name for worker in self._running])

    async def stop(self, timeout_seconds: float) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        started = time.monotonic()
        for worker in self._running:
            worker.stop.set()
        tasks = {worker.task for worker in self._running}
        if tasks:
            wait_seconds = max(timeout_seconds - CANCELLATION_SECONDS, 0.0)
            _, pending = await asyncio.wait(tasks, timeout=wait_seconds)
            for worker in self._running:
                if worker.task in pending:
                    log.warning("workers.cancelled", worker=worker.name)
                    worker.task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=CANCELLATION_SECONDS)
        self._running = []
        await stack.aclose()
        log.info("workers.stopped", seconds=round(time.monotonic() - started, 3))
