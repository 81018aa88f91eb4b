"""Waking readers promptly when events are appended (PostgreSQL LISTEN/NOTIFY).

``ledger_append_columns`` notifies the ``ledger_events`` channel once per group of deliveries,
at commit, and only when the group appended something. SQLite has no such thing; its readers
poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import is_postgresql

CHANNEL = "ledger_events"
log = structlog.get_logger("service.store")


# While the database is away the listener tries again this often; readers poll meanwhile.
RECONNECT_SECONDS = 2.0
# How often a listening connection is checked for having been lost.
CONNECTION_CHECK_SECONDS = 2.0


@asynccontextmanager
async def appended_events_signal(
    engine: AsyncEngine, wake: asyncio.Event, *, reconnect_seconds: float = RECONNECT_SECONDS
) -> AsyncIterator[None]:
    """Set ``wake`` whenever another transaction appends events (no-op on SQLite).

    Listening never holds up start-up: an unreachable database is retried in the background,
    and ``wake`` is set on every (re)connection, since notifications sent meanwhile are lost.
    """
    if not is_postgresql(engine):
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_listen_until(stop, engine, wake, reconnect_seconds))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


async def _listen_until(
    stop: asyncio.Event, engine: AsyncEngine, wake: asyncio.Event, reconnect_seconds: float
) -> None:
    while not stop.is_set():
        try:
            await _listen_while_connected(stop, engine, wake)
        except Exception as error:
            log.warning("notifications.unavailable", error_type=type(error).__name__)
        await _wait(stop, reconnect_seconds)


async def _listen_while_connected(
    stop: asyncio.Event, engine: AsyncEngine, wake: asyncio.Event
) -> None:
    def on_notification(*_: Any) -> None:
        wake.set()

    # One pooled connection is kept for listening for as long as it lasts.
    async with engine.connect() as connection:
        driver_connection = (await connection.get_raw_connection()).driver_connection
        assert driver_connection is not None
        await driver_connection.add_listener(CHANNEL, on_notification)
        wake.set()
        try:
            while not stop.is_set() and not driver_connection.is_closed():
                await _wait(stop, CONNECTION_CHECK_SECONDS)
        finally:
            try:
                await driver_connection.remove_listener(CHANNEL, on_notification)
            except Exception:  # the connection may be gone already; polling covers the rest
                log.warning("notifications.not_unlistened")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
