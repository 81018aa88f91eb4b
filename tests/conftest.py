from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import EventStore
from service.store.events.for_engine import event_store_for
from tests.support.databases import PostgresServer, fresh_sqlite_database


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.drop_template()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[str]:
    """A freshly migrated database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        with fresh_sqlite_database(tmp_path) as url:
            yield url
    else:
        with postgres_server.fresh_database() as url:
            yield url


@pytest.fixture
def postgresql_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``database_url`` (each database test runs on both engines)."""
    engine = create_engine(resolve_database_url(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def event_store(database_url: str) -> AsyncIterator[EventStore]:
    engine = create_engine(resolve_database_url(database_url))
    yield event_store_for(engine)
    await engine.dispose()
