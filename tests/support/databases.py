"""Real databases for tests: an SQLite file, or a PostgreSQL database created and dropped.

The schema comes from the Alembic migrations, as in production. On PostgreSQL a migrated
template database is made once per run and each test gets a fresh copy of it, because the
event store cannot be emptied (it refuses DELETE and TRUNCATE by design).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from service.store.migrations import upgrade_to_head

POSTGRES_HOST = os.environ.get("LEDGER_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("LEDGER_TEST_POSTGRES_PORT", "5432"))
POSTGRES_USERS = ("postgres", "root")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _admin_connection() -> tuple[asyncpg.Connection, str]:
    last_error: BaseException | None = None
    for user in POSTGRES_USERS:
        try:
            connection = await asyncpg.connect(
                host=POSTGRES_HOST, port=POSTGRES_PORT, user=user, database="postgres", timeout=3
            )
            return connection, user
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            last_error = error
    raise ConnectionError(f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}: {last_error}")


async def _admin(*statements: str) -> str:
    connection, user = await _admin_connection()
    try:
        for statement in statements:
            await connection.execute(statement)
        return user  # whichever user this server's trust authentication accepted
    finally:
        await connection.close()


def postgresql_url(user: str, database: str, port: int = POSTGRES_PORT) -> str:
    return f"postgresql://{user}@{POSTGRES_HOST}:{port}/{database}"


class PostgresServer:
    """One migrated template per test run; a fresh database cloned from it per test."""

    def __init__(self) -> None:
        self.user: str | None = None
        self.template: str | None = None
        self.unavailable_reason: str | None = None

    def ensure_template(self) -> None:
        if self.template or self.unavailable_reason:
            return
        name = f"ledger_template_{uuid.uuid4().hex[:12]}"
        try:
            self.user = asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        except ConnectionError as error:
            self.unavailable_reason = str(error)
            return
        upgrade_to_head(postgresql_url(self.user, name))
        self.template = name

    def require(self) -> None:
        self.ensure_template()
        if self.unavailable_reason:
            if in_ci():
                pytest.fail(f"PostgreSQL must be reachable in CI: {self.unavailable_reason}")
            pytest.skip(f"PostgreSQL not reachable: {self.unavailable_reason}")

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        self.require()
        name = f"ledger_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        try:
            assert self.user is not None
            yield postgresql_url(self.user, name)
        finally:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    @contextmanager
    def database_created_later(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """The URL of a database that does not exist yet, and what creates it (migrated)."""
        self.require()
        assert self.user is not None
        name = f"ledger_later_{uuid.uuid4().hex[:12]}"

        def create() -> None:
            asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))

        try:
            yield postgresql_url(self.user, name), create
        finally:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_template(self) -> None:
        if self.template:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
            self.template = None


@contextmanager
def fresh_sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'ledger.db'}"
    upgrade_to_head(url)
    yield url
