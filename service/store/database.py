"""Engines for the two supported databases, from the URL forms users write."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_SECONDS = 5.0
POSTGRESQL_CONNECT_TIMEOUT_SECONDS = 5.0
POSTGRESQL_COMMAND_TIMEOUT_SECONDS = 30.0
POOL_TIMEOUT_SECONDS = 5.0


class UnsupportedDatabaseUrl(ValueError):
    pass


def resolve_database_url(url: str) -> URL:
    """Accept ``sqlite:///path.db`` and ``postgresql://…`` as written; pick the async driver."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError as error:
        raise UnsupportedDatabaseUrl(f"{_redacted(url)!r} is not a database URL") from error
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if not parsed.database:
            raise UnsupportedDatabaseUrl("a PostgreSQL URL must name a database")
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UnsupportedDatabaseUrl(
                "an SQLite URL must name a file (sqlite:///relative.db or sqlite:////absolute.db);"
                " an in-memory database would lose every acknowledged notification"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    raise UnsupportedDatabaseUrl(
        f"unsupported database {backend!r}: use sqlite:///path.db or postgresql://user@host/db"
    )


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


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


def create_engine(url: URL, *, pool_size: int = 20) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
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


def _create_sqlite_engine(url: URL) -> AsyncEngine:
    if url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        hide_parameters=True,  # see create_engine
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a notification acknowledged with 200 must survive a power cut.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: two deferred transactions that both upgrade to
        # writing would otherwise deadlock, and appends must be serialised anyway.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
