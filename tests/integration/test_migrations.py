from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from service.store.database import create_engine, resolve_database_url
from service.store.event_store import SqlEventStore
from service.store.migrations import current_revision, head_revision, upgrade_to_head_async
from service.store.schema import metadata
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio


async def test_the_migrations_create_exactly_the_schema_the_models_describe(
    database_url: str,
) -> None:
    engine = create_engine(resolve_database_url(database_url))

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_migrating_again_keeps_the_recorded_events(
    database_url: str, event_store: SqlEventStore
) -> None:
    await event_store.append([invoice_event()])
    await upgrade_to_head_async(database_url)  # the fixture already migrated once
    [recorded] = await event_store.read_after(0, limit=10)
    assert recorded.idempotency_key == invoice_event().idempotency_key
    assert await current_revision(event_store._engine) == head_revision()
