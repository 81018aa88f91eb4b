"""On PostgreSQL a rebuild loads unindexed tables, indexes them once the rows are in, and
renames them into place: the live tables keep every index under its own name, the schema
stays the one the models describe, readers never wait for the indexing, and tables missing an
index are never swapped in."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.projections.rebuild import rebuild_invoices
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from service.store.migrations import alembic_config
from service.store.schema import metadata
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.histories import random_history
from tests.support.projections import projector, read_model

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql]

INDEXES = """
    SELECT tablename, indexname, regexp_replace(indexdef, 'rebuild_', '', 'g')
    FROM pg_indexes WHERE schemaname = 'public' AND tablename ~ 'invoice(s|_versions|_collections)$'
    ORDER BY 1, 2
"""


async def _admin(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )


async def _schema_differences(engine: AsyncEngine) -> list[object]:
    """What alembic finds between the database and the models (nothing, when they agree)."""

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(differences)


async def _histories(database_url: str, streams: int) -> None:
    engine = create_engine(resolve_database_url(database_url))
    try:
        store = event_store_for(engine)
        for event in random_history(3, streams, streams * 5, prefix=f"{uuid.uuid4().hex[:6]}-"):
            await store.append([event])
        await projector(engine, batch_size=13).catch_up()
    finally:
        await engine.dispose()


async def test_rebuilds_swap_tables_in_by_name_and_leave_the_schema_the_models_describe(
    postgresql_database_url: str,
) -> None:
    await _histories(postgresql_database_url, 20)
    admin = await _admin(postgresql_database_url)
    engine = create_engine(resolve_database_url(postgresql_database_url))

    try:
        indexes_before = await admin.fetch(INDEXES)
        live_tables_before = await admin.fetchval("SELECT 'invoices'::regclass::oid")
        incremental = await read_model(engine)
        store, read_models = event_store_for(engine), SqlReadModelStore(engine)
        live_tables = []
        # Twice: the second swaps back the tables the first one made the rebuild tables.
        for _ in range(2):
            await rebuild_invoices(store, read_models)
            assert await read_model(engine) == incremental
            assert await admin.fetch(INDEXES) == indexes_before
            assert await _schema_differences(engine) == []
            for table in ("invoices", "invoice_versions", "invoice_collections"):
                assert await admin.fetchval(f"SELECT count(*) FROM rebuild_{table}") == 0
            live_tables.append(await admin.fetchval("SELECT 'invoices'::regclass::oid"))
        # Renamed, not copied: each rebuild makes the other table the live one.
        assert live_tables[0] != live_tables_before
        assert live_tables[1] == live_tables_before
    finally:
        await admin.close()
        await engine.dispose()


async def test_tables_missing_an_index_are_never_swapped_in(
    postgresql_database_url: str,
) -> None:
    await _histories(postgresql_database_url, 6)
    admin = await _admin(postgresql_database_url)
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        live = await read_model(engine)
        await admin.execute("SELECT ledger_rebuild_tables('unindex')")
        with pytest.raises(asyncpg.UndefinedTableError):
            await admin.execute("SELECT ledger_rebuild_tables('swap')")
        assert await read_model(engine) == live
        with pytest.raises(asyncpg.InvalidParameterValueError, match="no step"):
            await admin.execute("SELECT ledger_rebuild_tables('drop')")
    finally:
        await admin.close()
        await engine.dispose()


async def test_readers_do_not_wait_while_the_rebuild_tables_are_indexed(
    postgresql_database_url: str,
) -> None:
    await _histories(postgresql_database_url, 6)
    reader, indexer = (
        await _admin(postgresql_database_url),
        await _admin(postgresql_database_url),
    )
    try:
        # A reader holds its lock on the live tables for as long as its transaction lasts.
        reading = reader.transaction()
        await reading.start()
        await reader.fetch("SELECT * FROM invoices JOIN invoice_versions USING (invoice_number)")
        await indexer.execute("SET lock_timeout = '2s'")
        await asyncio.wait_for(indexer.execute("SELECT ledger_rebuild_tables('index')"), 10)
        # The swap itself does wait for the reader: it renames the tables the reader reads.
        with pytest.raises(asyncpg.LockNotAvailableError):
            await indexer.execute("SELECT ledger_rebuild_tables('swap')")
        await reading.rollback()
    finally:
        await reader.close()
        await indexer.close()


async def test_a_projector_whose_statements_predate_a_swap_goes_on_writing_the_live_tables(
    postgresql_database_url: str,
) -> None:
    # The serving process keeps its connections, and their prepared statements, across a
    # rebuild another process swaps in: its projector's next batches land in the new tables,
    # during a rebuild as after one.
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        store, prefix = event_store_for(engine), uuid.uuid4().hex[:6]
        events = random_history(5, 15, 120, prefix=f"{prefix}-")
        for event in events[:60]:
            await store.append([event])
        await projector(engine, batch_size=5).catch_up()
        await rebuild_invoices(store, SqlReadModelStore(engine))
        for event in events[60:]:
            await store.append([event])
        serving = projector(engine, owner="serving", batch_size=5)
        await serving.catch_up()

        async def deliver_and_project() -> None:
            for event in random_history(6, 15, 60, prefix=f"{prefix}b-"):
                await store.append([event])
                await serving.catch_up()

        await asyncio.gather(
            deliver_and_project(), rebuild_invoices(store, SqlReadModelStore(engine))
        )
        await projector(engine, owner="after", batch_size=5).catch_up()
        incremental = await read_model(engine)
        await rebuild_invoices(store, SqlReadModelStore(engine))
        assert await read_model(engine) == incremental
    finally:
        await engine.dispose()


async def test_the_downgrade_leaves_the_rebuild_tables_as_the_models_describe_them(
    postgresql_database_url: str,
) -> None:
    # A rebuild that failed after indexing its tables leaves them indexed; the next rebuild
    # takes the indexes away, but a rebuild before revision 0025 never would.
    await _histories(postgresql_database_url, 6)
    admin = await _admin(postgresql_database_url)
    engine = create_engine(resolve_database_url(postgresql_database_url))

    try:
        await admin.execute("SELECT ledger_rebuild_tables('index')")
        await asyncio.to_thread(command.downgrade, alembic_config(postgresql_database_url), "0024")
        assert await _schema_differences(engine) == []
    finally:
        await asyncio.to_thread(command.upgrade, alembic_config(postgresql_database_url), "head")
        await admin.close()
        await engine.dispose()


async def test_indexes_named_near_the_length_limit_are_rebuilt_under_names_of_their_own(
    postgresql_database_url: str,
) -> None:
    # PostgreSQL cuts names at 63 bytes: "rebuild_" and two long names alike in their first 55
    # characters would otherwise name one rebuilt index twice.
    await _histories(postgresql_database_url, 6)
    admin = await _admin(postgresql_database_url)
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        prefix = "ix_invoices_" + "x" * 44
        await admin.execute(f"CREATE INDEX {prefix}_currency ON invoices (currency)")
        await admin.execute(f"CREATE INDEX {prefix}_due_date ON invoices (due_date)")
        indexes_before = await admin.fetch(INDEXES)
        incremental = await read_model(engine)
        for _ in range(2):
            await rebuild_invoices(event_store_for(engine), SqlReadModelStore(engine))
            assert await read_model(engine) == incremental
            assert await admin.fetch(INDEXES) == indexes_before
    finally:
        await admin.close()
        await engine.dispose()
