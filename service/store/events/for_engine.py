"""Choosing the event store for an engine's database.

A module of its own, beside the two engine modules rather than inside the interface: the
interface (base.py) is imported by both engine modules for the shared types, so if it also
chose between them, each engine would import, through it, the other engine and itself, a
cycle. Here the imports point one way: base ← postgres, sqlite ← for_engine. Not the
package's ``__init__`` either, so that importing the interface loads no engine's driver.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import is_postgresql
from service.store.events.base import HORIZON_LOCK_TIMEOUT_MILLISECONDS, SqlEventStore
from service.store.events.postgres import PostgresEventStore
from service.store.events.sqlite import SqliteEventStore


def event_store_for(
    engine: AsyncEngine,
    *,
    horizon_lock_timeout_milliseconds: int = HORIZON_LOCK_TIMEOUT_MILLISECONDS,
) -> SqlEventStore:
    """The event store of the engine's database: the one factory the composition roots call."""
    store_class = PostgresEventStore if is_postgresql(engine) else SqliteEventStore
    return store_class(engine, horizon_lock_timeout_milliseconds=horizon_lock_timeout_milliseconds)
