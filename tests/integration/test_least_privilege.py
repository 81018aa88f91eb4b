"""The service works as the least-privileged role of deploy/postgres, and that role cannot
rewrite history even where no trigger would stop it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.settings import resolve_database_url
from service.store.accounting_exports import SqlAccountingExports
from service.store.console_sessions import SqlConsoleSessions
from service.store.database import create_engine
from service.store.events.base import AppendOutcome
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql]


async def test_the_service_role_appends_reads_projects_and_rebuilds(service_role_url: str) -> None:
    engine = create_engine(resolve_database_url(service_role_url))
    store = event_store_for(engine)
    read_models = SqlReadModelStore(engine)
    try:
        [result] = await store.append([invoice_event()])
        assert result.outcome is AppendOutcome.APPENDED
        assert [e.position for e in await store.read_after(0, limit=10)] == [result.position]
        await InvoiceProjector(store, read_models, owner="p").catch_up()
        assert await read_models.checkpoint() == result.position
        assert await rebuild_invoices(store, read_models) == result.position
    finally:
        await engine.dispose()


async def test_the_service_role_records_and_reads_accounting_exports(
    service_role_url: str,
) -> None:
    engine = create_engine(resolve_database_url(service_role_url))
    store = event_store_for(engine)
    exports = SqlAccountingExports(engine)
    try:
        await store.append([invoice_event()])
        await InvoiceProjector(store, SqlReadModelStore(engine), owner="p").catch_up()
        day = date(2026, 3, 1)
        now = datetime.now(UTC)
        made = await exports.create("payments", day, day, "cli:test", now)
        assert await exports.export(made.export_id) == made
        assert len(await exports.lines(made.export_id)) == made.line_count
        assert (await exports.create("receivables", day, day, "cli:test", now)).export_id > 1
    finally:
        await engine.dispose()


async def test_the_service_role_opens_ends_and_prunes_console_sessions(
    service_role_url: str,
) -> None:
    engine = create_engine(resolve_database_url(service_role_url))
    sessions = SqlConsoleSessions(engine, lifetime_seconds=3600)
    try:
        session_id = await sessions.create("token:0123456789ab", "read")
        assert await sessions.find_valid(session_id) is not None
        assert await sessions.revoke(session_id) is True
        assert await sessions.find_valid(session_id) is None
        assert await sessions.prune_expired() == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE inbox SET outcome = 'accepted'",
        "DELETE FROM inbox",
        "TRUNCATE events",
        "DROP TRIGGER events_refuse_update_delete ON events",
        "CREATE TABLE smuggled (id int)",
        # An operator's resolution stands as recorded.
        "UPDATE delivery_resolutions SET reason = 'rewritten'",
        "DELETE FROM delivery_resolutions",
        "DELETE FROM delivery_notices",
        # A session cannot be prolonged nor given another token's name or scope.
        "UPDATE console_sessions SET expires_at = now() + interval '1 year'",
        "UPDATE console_sessions SET scope = 'operator'",
        # What finance was given is never edited: a correction is a new export's lines.
        "UPDATE accounting_export_lines SET amount = 0",
        "DELETE FROM accounting_exports",
    ],
)
async def test_the_service_role_cannot_change_what_was_recorded(
    service_role_url: str, statement: str
) -> None:
    url = make_url(service_role_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()
