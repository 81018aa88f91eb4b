"""Engines for the two supported databases, from the URL forms users write."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from service.settings import SQLITE_LOCK_WAIT_SECONDS, sqlite_lock_wait_seconds
from service.store.column_types import sqlite_amount_sum
from service.store.errors import is_sqlite_lock_timeout

# A transaction waits for SQLite's write lock, which one connection of one process holds at
# a time (a serving process, a command beside it), in attempts of the busy timeout, each
# logged, up to the bound (settings.sqlite_lock_wait_seconds).
SQLITE_BUSY_TIMEOUT_SECONDS = 5.0
POSTGRESQL_CONNECT_TIMEOUT_SECONDS = 5.0
POSTGRESQL_COMMAND_TIMEOUT_SECONDS = 30.0
POOL_TIMEOUT_SECONDS = 5.0


log = structlog.get_logger("service.store")


async def database_now(connection: AsyncConnection) -> datetime:
    """The database server's clock (UTC): one clock for every replica, whatever each host's says.

    PostgreSQL's CURRENT_TIMESTAMP is the transaction's start; SQLite's is whole seconds, so
    milliseconds are asked of strftime.
    """
    if connection.dialect.name == "postgresql":
        value = await connection.scalar(text("SELECT CURRENT_TIMESTAMP"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    stamp = await connection.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
    return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)


def is_postgresql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def create_engine(
    url: URL, *, pool_size: int = 20, sqlite_lock_wait_seconds: float = SQLITE_LOCK_WAIT_SECONDS
) -> AsyncEngine:
    """``sqlite_lock_wait_seconds``: how long a transaction waits for SQLite's write lock
    when the URL's ``timeout`` does not say (a command beside a serving process waits long;
    the serving process answers 503 sooner)."""
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, sqlite_lock_wait_seconds)
    return create_async_engine(
        url,
        # Statement parameters carry payer names and e-mail addresses: they must never reach
        # an exception message, a log line or an answer.
        hide_parameters=True,
        pool_size=pool_size,
        # Connections beyond the pool would be opened and closed per request under load,
        # and connecting costs far more than waiting briefly for a pooled connection.
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        # No pre-ping: it costs a round trip per request. A connection found dead is
        # invalidated on use, and appends retry once on a fresh one (they are idempotent).
        connect_args={
            "timeout": POSTGRESQL_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": POSTGRESQL_COMMAND_TIMEOUT_SECONDS,
            # Dates of instants (reports by day) are UTC dates.
            "server_settings": {"application_name": "invoice-ledger", "timezone": "UTC"},
        },
    )


def _create_sqlite_engine(url: URL, lock_wait_default_seconds: float) -> AsyncEngine:
    if url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    lock_wait_seconds = sqlite_lock_wait_seconds(url, lock_wait_default_seconds)
    busy_timeout_seconds = min(SQLITE_BUSY_TIMEOUT_SECONDS, lock_wait_seconds)
    begin_attempts = max(1, math.ceil(lock_wait_seconds / busy_timeout_seconds - 1e-9))
    engine = create_async_engine(
        url,
        hide_parameters=True,  # see create_engine
        connect_args={"timeout": busy_timeout_seconds},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a notification acknowledged with 200 must survive a power cut.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.close()
        # Sums kept in SQL (the projector's aggregates), exact: SQLite's own + is floating point.
        dbapi_connection.create_function(
            "ledger_amount_sum", 2, sqlite_amount_sum, deterministic=True
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: two deferred transactions that both upgrade to
        # writing would otherwise deadlock, and appends must be serialised anyway. While
        # another connection holds it, wait: a busy timeout at a time (SQLite polls within
        # it), each one logged, so that a long hold shows before the bound gives up.
        for attempt in range(1, begin_attempts + 1):
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except exc.OperationalError as error:
                if attempt == begin_attempts or not is_sqlite_lock_timeout(error):
                    raise
                log.warning(
                    "sqlite.waiting_for_lock",
                    waited_seconds=round(attempt * busy_timeout_seconds, 1),
                    bound_seconds=lock_wait_seconds,
                )

    return engine
