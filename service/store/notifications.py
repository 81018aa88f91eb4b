"""Waking readers promptly when events are appended (PostgreSQL LISTEN/NOTIFY).

``ledger_append`` notifies the ``ledger_events`` channel at commit. SQLite has no such thing;
its readers poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import is_postgresql

CHANNEL = "ledger_events"
log = structlog.get_logger("service.store")


@asynccontextmanager
async def appended_events_signal(engine: AsyncEngine, wake: asyncio.Event) -> AsyncIterator[None]:
    """Set ``wake`` whenever another transaction appends events (no-op on SQLite)."""
    if not is_postgresql(engine):
        yield
        return

    def on_notification(*_: Any) -> None:
        wake.set()

    # One pooled connection is kept for listening for as long as the context lasts.
    async with engine.connect() as connection:
        driver_connection = (await connection.get_raw_connection()).driver_connection
        assert driver_connection is not None
        await driver_connection.add_listener(CHANNEL, on_notification)
        try:
            yield
        finally:
            try:
                await driver_connection.remove_listener(CHANNEL, on_notification)
            except Exception:  # the connection may be gone already; polling covers the rest
                log.warning("notifications.not_unlistened")
