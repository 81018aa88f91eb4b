"""Alembic environment: migrations run over an async engine, imports no service code.

The caller may pass, through ``config.attributes``:
- ``create_engine``: a function of no arguments returning an ``AsyncEngine`` (the service
  passes its own, with its SQLite locking and PostgreSQL timeouts);
- ``target_metadata``: the tables the models describe, for autogenerate.
Without ``create_engine`` (``alembic upgrade head`` from the repository), the database is
``LEDGER_DATABASE_URL``, written as the service accepts it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from alembic import context
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite:///var/ledger.db"
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def _engine_from_environment() -> AsyncEngine:
    url = make_url(os.environ.get("LEDGER_DATABASE_URL", DEFAULT_DATABASE_URL))
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise SystemExit(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    engine = create_async_engine(url.set(drivername=ASYNC_DRIVERS[backend]))
    if backend == "sqlite":
        # The sqlite3 module would commit before each DDL statement: let each migration run
        # in one transaction, as on PostgreSQL.
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    create_engine: Callable[[], AsyncEngine] = context.config.attributes.get(
        "create_engine", _engine_from_environment
    )
    engine = create_engine()
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")

asyncio.run(_run_online())
