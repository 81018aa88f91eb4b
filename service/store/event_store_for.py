"""Choosing the event store for an engine's database.

A module of its own, beside the two engine modules rather than inside the interface: the
interface (event_store.py) is imported by both engine modules for the shared types, so if
it also chose between them, each engine would import, through it, the other engine and
itself, a cycle. Here the imports point one way: event_store ← postgres_event_store,
sqlite_event_store ← event_store_for. (A ``store/events/`` package could hold all four;
this module is what such a package's ``__init__`` would contain.)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import is_postgresql
from service.store.event_store import HORIZON_LOCK_TIMEOUT_MILLISECONDS, EventStore
from service.store.postgres_event_store import PostgresEventStore
from service.store.sqlite_event_store import SqliteEventStore


def event_store_for(
    engine: AsyncEngine,
    *,
    horizon_lock_timeout_milliseconds: int = HORIZON_LOCK_TIMEOUT_MILLISECONDS,
) -> EventStore:
    """The event store of the engine's database: the one factory the composition roots call."""
    store_class = PostgresEventStore if is_postgresql(engine) else SqliteEventStore
    return store_class(engine, horizon_lock_timeout_milliseconds=horizon_lock_timeout_milliseconds)
