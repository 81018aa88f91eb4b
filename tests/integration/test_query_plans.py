"""The projector's and the API's main queries stay on their indexes on PostgreSQL, once the
tables hold enough rows and are analysed (as a production database's autovacuum does): their
cost must not grow with the tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
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
from service.read.invoice_pages import InvoiceFilters, PageKey
from service.read.queries import InvoiceQueries
from service.read.sorted_invoices import InvoiceSort, SortedInvoices, key_of
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.delivery_log import DeliveryFilters, SqlDeliveryLog
from service.store.delivery_notices import untold_waiting
from service.store.delivery_queue import deliveries_waiting
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


def index_names(plan: dict[str, Any]) -> set[str]:
    names = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        names |= index_names(child)
    return names


async def plans_of(database_url: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(database_url)
    try:
        plans = []
        for statement, parameters in statements:
            [row] = await connection.fetch(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
            plans.append(json.loads(row[0])[0]["Plan"])
        return plans
    finally:
        await connection.close()


async def analysed_invoices(database_url: str) -> AsyncEngine:
    await generate(database_url, 0, INVOICES)
    engine = create_engine(resolve_database_url(database_url))
    await rebuild_invoices(event_store_for(engine), SqlReadModelStore(engine))
    connection = await asyncpg.connect(database_url)
    await connection.execute("ANALYZE")
    await connection.close()
    return engine


# A filter of the list, matching a few invoices of the generated ones or a tenth of them,
# and the index that must serve it: read in the list's order, a page stops at its limit.
LIST_FILTERS = {
    "ix_invoices_list_by_organization_id": InvoiceFilters(organizations="org-a"),
    "ix_invoices_list_by_status": InvoiceFilters(status="PAID"),
    "ix_invoices_list_by_status_currency": InvoiceFilters(status="PAID", currency="GBP"),
    "ix_invoices_list_by_currency": InvoiceFilters(currency="GBP"),
    "ix_invoices_list_by_due_date": InvoiceFilters(due_before=date(2025, 2, 3)),
    "ix_invoices_list_by_customer_name": InvoiceFilters(customer_name="Customer 17"),
    "ix_invoices_list_by_customer_email": InvoiceFilters(customer_email="payer@example.com"),
}


async def test_each_filter_of_the_invoice_list_reads_the_index_made_for_it(
    postgresql_database_url: str,
) -> None:
    engine = await analysed_invoices(postgresql_database_url)
    try:
        queries = InvoiceQueries(engine)
        with statements_of(engine) as statements:
            for filters in LIST_FILTERS.values():
                await queries.invoices(filters, 100, None)
                await queries.invoices(filters, 100, None, newest_first=True)
            # A currency with a due date, and a customer's invoices, page by page.
            currency_due = InvoiceFilters(currency="GBP", due_after=date(2026, 7, 1))
            await queries.invoices(currency_due, 100, None)
            [first, *_] = await queries.invoices(InvoiceFilters(currency="GBP"), 100, None)
            after = PageKey(first.updated_at, first.organization_id, first.invoice_number)
            await queries.invoices(InvoiceFilters(customer_name="Customer 17"), 2, after)
        # Planned for their values: a cached generic plan would pick one index for all.
        executed: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
        await queries.invoices(InvoiceFilters(currency="GBP"), 100, None)
        assert executed[0] == "SET LOCAL plan_cache_mode = force_custom_plan"
        plans = await plans_of(postgresql_database_url, statements)
        wanted = [name for name in LIST_FILTERS for _ in ("oldest first", "newest first")]
        for name, plan in zip(wanted, plans, strict=False):
            assert name in index_names(plan), (name, plan)
        for plan in plans[len(wanted) :]:
            assert any(name.startswith("ix_invoices_list_by_") for name in index_names(plan))
            assert full_scans(plan) == []
    finally:
        await engine.dispose()


async def test_the_console_s_sorted_list_reads_each_order_from_an_index_either_way(
    postgresql_database_url: str,
) -> None:
    engine = await analysed_invoices(postgresql_database_url)
    try:
        sorted_invoices = SortedInvoices(engine)
        indexes = {
            "updated": "ix_invoices_updated_at_organization_id_invoice_number",
            "due": "ix_invoices_list_by_due_date",
            "balance": "ix_invoices_list_by_balance_amount",
        }
        for by, index in indexes.items():
            with statements_of(engine) as statements:
                for descending in (False, True):
                    sort = InvoiceSort(by, descending)  # type: ignore[arg-type]
                    first = await sorted_invoices.page(InvoiceFilters(), sort, 50)
                    # A page after the first, and the page before that one.
                    key = key_of(first.rows[-1], sort)
                    await sorted_invoices.page(InvoiceFilters(), sort, 50, key)
                    await sorted_invoices.page(InvoiceFilters(), sort, 50, key, before=True)
            # A page reads its part of known values, and of unknown ones where it reaches
            # them: each from the order's index.
            plans = await plans_of(postgresql_database_url, statements)
            assert len(plans) >= 6
            for plan in plans:
                assert index in index_names(plan), (by, plan)
                assert full_scans(plan) == []
    finally:
        await engine.dispose()


async def test_the_reports_as_of_a_date_sum_to_their_grain_on_their_indexes(
    postgresql_database_url: str,
) -> None:
    engine = await analysed_invoices(postgresql_database_url)
    try:
        queries = InvoiceQueries(engine)
        moment = datetime(2025, 9, 1, 13, tzinfo=UTC)
        with statements_of(engine) as balances:
            await queries.outstanding(moment)
            await queries.aging(moment.date(), None, ZoneInfo("Europe/London"))
            await queries.aging(date(2025, 2, 1), "")
        year = (date(2025, 1, 1), date(2025, 12, 31))
        with statements_of(engine) as collections:
            for interval in ("week", "month"):
                await queries.collections(*year, interval)
            # Days beginning at another zone's midnight: the UTC days a period covers whole
            # from the daily aggregate, only the days its ends split from the collections.
            for zone in ("Asia/Tokyo", "America/Los_Angeles"):
                await queries.collections(*year, "month", zone=ZoneInfo(zone))
                await queries.collections(*year, "week", "", ZoneInfo(zone))
        statements = balances + collections
        plans = await plans_of(postgresql_database_url, statements)
        assert [(s, full_scans(plan)) for (s, _), plan in zip(statements, plans, strict=True)
                if full_scans(plan)] == []  # fmt: skip
        # The state rows of the moment's own day, and the collections of split days, are read
        # by their indexes.
        by_index = {
            "FROM invoice_versions": {"ix_invoice_versions_valid_from_valid_to",
                                      "ix_invoice_versions_valid_to"},
            "JOIN invoice_collections": {"ix_invoice_collections_collected_at"},
        }  # fmt: skip
        for source, indexes in by_index.items():
            reading = [plan for (s, _), plan in zip(statements, plans, strict=True) if source in s]
            assert reading and all(index_names(plan) & indexes for plan in reading), source
        # Each statement answers at most a row per currency and bucket, or period of a year.
        connection = await asyncpg.connect(postgresql_database_url)
        try:
            for statement, parameters in balances:
                assert len(await connection.fetch(statement, *parameters)) <= 4 * 6, statement
            for statement, parameters in collections:
                assert len(await connection.fetch(statement, *parameters)) <= 4 * 54, statement
        finally:
            await connection.close()
    finally:
        await engine.dispose()


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


async def test_the_delivery_log_finds_an_invoices_deliveries_and_the_queue_on_indexes(
    postgresql_database_url: str,
) -> None:
    engine = await analysed_invoices(postgresql_database_url)
    connection = await asyncpg.connect(postgresql_database_url)
    try:
        # An inbox of 40,000 deliveries, one in a thousand a dead letter or a conflict.
        await connection.execute(
            "INSERT INTO inbox (received_at, outcome, event_position, body)"
            " SELECT now(), CASE WHEN g % 1000 = 0 THEN 'rejected' WHEN g % 1000 = 1"
            " THEN 'conflict' ELSE 'accepted' END, g, CASE WHEN g % 1000 = 0 THEN '{}'::bytea"
            " END FROM generate_series(1, 40000) AS g"
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    log = SqlDeliveryLog(engine)
    try:
        with statements_of(engine) as statements:
            await log.deliveries(DeliveryFilters(invoice_number="BENCH-00000123"), 100)
            await log.deliveries(DeliveryFilters(waiting=True), 100)
            await deliveries_waiting(engine)
            await untold_waiting(engine, 101)
        plans = await plans_of(postgresql_database_url, statements)
        assert len(plans) == 5
        # Replays and resolutions are operators' acts, a handful: reading them whole is right.
        for plan in plans:
            scans = _scans(plan)
            assert not [scan for scan in scans if scan in {"Seq Scan inbox", "Seq Scan events"}], (
                " / ".join(scans)
            )
    finally:
        await engine.dispose()


def _scans(plan: dict[str, Any]) -> list[str]:
    found = [f"{plan['Node Type']} {plan.get('Relation Name', '')}"]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found
