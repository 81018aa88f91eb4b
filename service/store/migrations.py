"""Applying Alembic migrations and checking the schema is at head, from code."""

from __future__ import annotations

import asyncio
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import metadata

# The top-level ``migrations`` package, found the same way in a checkout and in an installed
# wheel. It imports nothing of the service: the service hands it an engine (see its env.py).
MIGRATIONS_PACKAGE = "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files(MIGRATIONS_PACKAGE)))
    # Built only when a command connects: head_revision() passes no usable URL.
    config.attributes["create_engine"] = lambda: create_engine(
        resolve_database_url(database_url), pool_size=1
    )
    config.attributes["target_metadata"] = metadata
    return config


def upgrade_to_head(database_url: str) -> None:
    """Idempotent: a database already at head is left as it is. Call outside an event loop."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_to_head_async(database_url: str) -> None:
    # env.py runs its own event loop, so it needs a thread of its own.
    await asyncio.to_thread(upgrade_to_head, database_url)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    # Read directly rather than through alembic's MigrationContext, which logs two lines at
    # INFO each time: noise on every readiness probe and before a command's own error.
    def read(connection: Connection) -> str | None:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return versions.scalar_one_or_none()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


class SchemaNotAtHead(Exception):
    """The database's schema is not the one this code was written for: run the migrations."""

    def __init__(self, current: str | None, expected: str | None) -> None:
        super().__init__(f"database schema at {current or 'nothing'}, expected {expected}")
        self.current = current
        self.expected = expected


async def require_schema_at_head(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotAtHead`` unless the database is migrated to this code's head."""
    current, expected = await current_revision(engine), head_revision()
    if current != expected:
        raise SchemaNotAtHead(current, expected)
