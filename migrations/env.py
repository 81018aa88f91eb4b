"""Alembic environment: migrations run over the service's own async engine."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from service.store.database import create_engine, resolve_database_url
from service.store.schema import metadata

DEFAULT_DATABASE_URL = "sqlite:///var/ledger.db"


def _database_url() -> str:
    configured = context.config.attributes.get("database_url")
    return configured or os.environ.get("LEDGER_DATABASE_URL", DEFAULT_DATABASE_URL)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(resolve_database_url(_database_url()), pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")

asyncio.run(_run_online())
