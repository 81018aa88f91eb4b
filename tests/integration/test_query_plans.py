"""The projector's and the API's main queries stay on their indexes on PostgreSQL, once the
tables hold enough rows and are analysed (as a production database's autovacuum does): their
cost must not grow with the tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.generate import generate
from service.domain.events import NewEvent
from service.projections.projector import InvoiceProjector
from service.projections.rebuild import rebuild_invoices
from service.read.invoice_pages import InvoiceFilters
from service.read.queries import InvoiceQueries
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio
INVOICES = 20_000
# The tables whose size grows with the business: a query must not read them whole.
GROWING_TABLES = {
    "events", "invoices", "invoice_versions", "invoice_collections", "invoice_fold_snapshots",
}  # fmt: skip


def reminders(key: str, seconds: int, invoices: int) -> list[NewEvent]:
    return [
        invoice_event(f"BENCH-{n:08d}", f"{key}-{n}", seconds=seconds, type="InvoiceReminderSent")
        for n in range(invoices)
    ]


@contextmanager
def statements_of(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every single-row-set statement the engine runs meanwhile, with its parameters."""
    captured: list[tuple[str, Any]] = []

    def record(
        connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def full_scans(plan: dict[str, Any]) -> list[str]:
    scans = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in GROWING_TABLES:
        scans.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        scans += full_scans(child)
    return scans


async def plans_reading_whole_tables(
    database_url: str, statements: list[tuple[str, Any]]
) -> list[tuple[str, list[str]]]:
    connection = await asyncpg.connect(database_url)
    try:
        found = []
        for statement, parameters in statements:
            [row] = await connection.fetch(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
            scans = full_scans(json.loads(row[0])[0]["Plan"])
            if scans:
                found.append((statement, scans))
        return found
    finally:
        await connection.close()


async def test_the_projector_and_invoice_queries_use_their_indexes(
    postgresql_database_url: str,
) -> None:
    await generate(postgresql_database_url, 0, INVOICES)
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        store, read_models = event_store_for(engine), SqlReadModelStore(engine)
        await rebuild_invoices(store, read_models)
        projector = InvoiceProjector(store, read_models, owner="p1")
        # Batches touching streams without a snapshot (read whole) make snapshots of them...
        await store.append(reminders("new", 10**8, 5000))
        await projector.catch_up()
        connection = await asyncpg.connect(postgresql_database_url)
        await connection.execute("ANALYZE")
        await connection.close()
        queries = InvoiceQueries(engine)
        since = datetime(2025, 6, 1, tzinfo=UTC)
        with statements_of(engine) as statements:
            # ...which the next batch folds onto; a late fact makes its stream read again.
            await store.append(reminders("next", 10**8 + 60, 100))
            await store.append([invoice_event("BENCH-00000200", "late", type="InvoiceCanceled")])
            await projector.catch_up()
            await queries.invoices_numbered("BENCH-00000123")
            await queries.invoices_numbered("BENCH-00000123", "org-a")
            await queries.invoices(InvoiceFilters(), 100, None)
            await queries.invoices(InvoiceFilters(status="PAID", currency="EUR"), 100, None)
            await queries.invoices(InvoiceFilters(updated_since=since), 100, None)
            await queries.invoices(InvoiceFilters(due_before=since.date()), 100, None)
            await queries.invoices(
                InvoiceFilters(due_after=(since + timedelta(days=300)).date()), 100, None
            )
            # The reports as of a date sum the day-bucketed aggregates (whose size grows with
            # days, not invoices) and read only the state rows of the date's own day.
            await queries.outstanding(since + timedelta(hours=13), "org-a")
            await queries.outstanding(since + timedelta(hours=13))
            await queries.aging(since.date())
            await queries.aging(since.date(), "org-a", ZoneInfo("America/Los_Angeles"))
            await queries.collections(since.date(), since.date() + timedelta(days=365), "month")
        assert len(statements) > 10
        assert await plans_reading_whole_tables(postgresql_database_url, statements) == []
    finally:
        await engine.dispose()
