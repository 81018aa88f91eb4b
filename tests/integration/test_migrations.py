from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from service.domain.events import NewEvent
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.base import (
    APPEND_LOCK_KEY,
    STREAM_LOCK_CLASS,
    EventStore,
    content_digest,
)
from service.store.events.for_engine import event_store_for
from service.store.events.postgres import PostgresEventStore
from service.store.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head_async,
)
from service.store.schema import (
    invoice_collections,
    invoice_totals,
    invoice_versions,
    invoices,
    metadata,
)
from service.store.views import report_aggregates
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event
from tests.support.histories import random_history

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


@pytest.mark.postgresql
async def test_one_append_function_remains_and_the_service_gives_it_its_lock_keys(
    postgresql_database_url: str,
) -> None:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        async with engine.connect() as connection:
            functions = (
                await connection.execute(
                    text(
                        "SELECT oid::regprocedure::text, pg_get_functiondef(oid) FROM pg_proc"
                        " WHERE proname LIKE 'ledger_append%'"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    [(signature, definition)] = functions
    assert signature.startswith("ledger_append_columns(bigint,integer,")
    assert str(APPEND_LOCK_KEY) not in definition
    assert f"({STREAM_LOCK_CLASS}," not in definition


async def test_migrating_again_keeps_the_recorded_events(
    database_url: str, event_store: EventStore
) -> None:
    await event_store.append([invoice_event()])
    await upgrade_to_head_async(database_url)  # the fixture already migrated once
    [recorded] = await event_store.read_after(0, limit=10)
    assert recorded.idempotency_key == invoice_event().idempotency_key
    assert await current_revision(event_store._engine) == head_revision()


async def append_as_at_0002(event_store: EventStore, event: NewEvent) -> None:
    """Append as the service did at revision 0002: on PostgreSQL through ``ledger_append``
    (``ledger_append_group`` came with 0010); SQLite appends in Python, as it did then."""
    if not isinstance(event_store, PostgresEventStore):
        await event_store.append([event])
        return
    document = {
        "stream_id": event.stream_id,
        "type": event.type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": datetime.now(UTC).isoformat(),
        "source": event.source.value,
        "idempotency_key": event.idempotency_key,
        "content_digest": content_digest(event),
        "data": event.data,
    }
    async with event_store._engine.begin() as connection:
        await connection.execute(
            text("SELECT ledger_append(CAST(:events AS jsonb), NULL)"),
            {"events": json.dumps([document])},
        )


async def test_migrating_from_0002_loses_no_event_and_the_projector_rebuilds_the_read_models(
    database_url: str, event_store: EventStore
) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0002")
    engine = event_store._engine
    appended = [  # as version 1 wrote them: the organization only under "notification"
        replace(event, schema_version=1)
        for event in (
            invoice_event(
                "1001",
                "a",
                notification={"organizationId": "org-a"},
                totalAmount="5.00",
                balanceAmount="5.00",
            ),
            invoice_event("1001", "b", seconds=1, notification={"organizationId": "org-b"}),
            invoice_event("1002", "c", seconds=2),
        )
    ]
    for event in appended:
        await append_as_at_0002(event_store, event)
    before = await event_store.read_after(0, limit=100)
    async with engine.begin() as connection:  # what the 0002 projector had written
        now = datetime.now(UTC)
        await connection.execute(
            text("INSERT INTO projection_checkpoints (name, position, updated_at)"
                 " VALUES ('invoices', 3, :now)"),
            {"now": now},
        )  # fmt: skip
        await connection.execute(
            text("INSERT INTO invoices (invoice_number, total_micros, balance_micros, payments,"
                 " last_position, updated_at) VALUES ('1001', 5000000, 10000000, '[]', 3, :now)"),
            {"now": now},
        )  # fmt: skip

    await upgrade_to_head_async(database_url)

    assert await event_store.read_after(0, limit=100) == before
    read_models = SqlReadModelStore(engine)
    assert await read_models.checkpoint() == 0
    await InvoiceProjector(event_store, read_models, owner="p1").catch_up()
    assert await read_models.checkpoint() == 3
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(invoices.c.organization_id, invoices.c.invoice_number, invoices.c.total_amount)
            .order_by(invoices.c.invoice_number, invoices.c.organization_id)
        )  # fmt: skip
        assert [tuple(row) for row in rows] == [
            # A send's balance, before any payment, is its total.
            ("org-a", "1001", Decimal("5")), ("org-b", "1001", Decimal("10")),
            ("", "1002", Decimal("10")),
        ]  # fmt: skip


async def test_the_downgrade_to_0002_keeps_the_events(
    database_url: str, event_store: EventStore
) -> None:
    await event_store.append([invoice_event()])
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0002")
    assert [e.idempotency_key for e in await event_store.read_after(0, limit=10)] == ["key-1"]
    await upgrade_to_head_async(database_url)
    assert await current_revision(event_store._engine) == head_revision()


async def _read_model_rows(database_url: str) -> dict[str, list[dict[str, Any]]]:
    # An engine of its own: pooled connections keep statements prepared on the tables before
    # a migration changed them.
    engine = create_engine(resolve_database_url(database_url))
    tables = [invoices, invoice_versions, invoice_collections, invoice_totals,
              *report_aggregates.TABLES]  # fmt: skip
    try:
        async with engine.connect() as connection:
            return {
                table.name: [
                    row._asdict()
                    for row in await connection.execute(select(table).order_by(*table.primary_key))
                ]
                for table in tables
            }
    finally:
        await engine.dispose()


def _without_provisional(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    return {
        table: [{k: v for k, v in row.items() if "provisional" not in k} for row in table_rows]
        for table, table_rows in rows.items()
    }


def _provisional_figures(rows: dict[str, list[dict[str, Any]]]) -> list[Any]:
    return [v for table_rows in rows.values() for row in table_rows
            for k, v in row.items() if "provisional" in k and v]  # fmt: skip


async def test_migrating_from_0010_refills_the_aggregates_and_a_rebuild_labels_what_is_provisional(
    database_url: str, event_store: EventStore
) -> None:
    for event in random_history(seed=11, invoices=8, events=60):
        await event_store.append([event])
    read_models = SqlReadModelStore(event_store._engine)
    await InvoiceProjector(event_store, read_models, owner="p1").catch_up()
    await read_models.release_lease("p1")
    projected = await _read_model_rows(database_url)
    assert projected["report_open_balance_changes"], "the history leaves open balances"
    assert _provisional_figures(projected), "the history leaves figures labelled provisional"

    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0010")
    await upgrade_to_head_async(database_url)

    # 0011 summed the aggregates from the rows kept; 0012 labels none of them provisional
    # (no projector before it did) until they are projected again.
    migrated = await _read_model_rows(database_url)
    assert _without_provisional(migrated) == _without_provisional(projected)
    assert _provisional_figures(migrated) == []
    engine = create_engine(resolve_database_url(database_url))
    try:
        await rebuild_invoices(event_store_for(engine), SqlReadModelStore(engine))
    finally:
        await engine.dispose()
    assert await _read_model_rows(database_url) == projected
