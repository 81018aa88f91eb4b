"""The console's lists and reports as CSV, with the page's own filters and order: the invoice
list, the delivery log, and the overview's headline, aging and collections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.domain.reports import AGING_BUCKETS
from service.fronts.auth import Caller
from service.fronts.console.csv_files import csv_file
from service.fronts.console.delivery_pages import delivery_filters
from service.fronts.console.frame import ConsoleFrame
from service.fronts.console.inputs import InvalidInput
from service.fronts.console.invoice_list import list_sort
from service.fronts.console.receivables import aging_report, collections_report, overview_inputs
from service.fronts.console.report_pages import invoice_filters
from service.fronts.console.views import as_document
from service.fronts.console.zones import requested_zone
from service.ingest.delivery_documents import summaries
from service.read.documents import invoice_at_day_end, invoice_from_row
from service.read.sorted_invoices import key_of

CSV_PAGE_ROWS = 500
CSV_PAGES_MAX = 20  # 10,000 lines: past that a person narrows the filters (or uses /v1)
INVOICE_COLUMNS = (
    "invoice", "organization", "customer", "status", "currency", "total", "balance",
    "provisional", "due_date", "updated_at",
)  # fmt: skip
DELIVERY_COLUMNS = (
    "delivery", "received_at", "outcome", "reason", "resolved", "event_type",
    "notification_id", "position",
)  # fmt: skip
HEADLINE_COLUMNS = (
    "currency", "outstanding", "overdue", "open_invoices", "collected_this_month",
    "collected_last_month", "dso_days", "incomplete",
)  # fmt: skip
AGING_COLUMNS = ("currency", *AGING_BUCKETS, "provisional", "incomplete")
COLLECTION_COLUMNS = (
    "currency", "period", "first_day", "last_day", "amount", "provisional", "incomplete",
)  # fmt: skip


def _too_many() -> InvalidInput:
    return InvalidInput(
        f"more than {CSV_PAGE_ROWS * CSV_PAGES_MAX} lines: narrow the filters for a CSV file"
    )


def invoice_line(invoice: dict[str, Any]) -> tuple[Any, ...]:
    """An invoice as the list shows it (``invoice`` as /v1 answers it)."""
    customer = invoice.get("customer") or {}
    shown = "erased" if customer.get("erased") else customer.get("name") or customer.get("email")
    return (
        invoice["invoiceNumber"], invoice["organizationId"], shown, invoice["status"],
        invoice["currency"], invoice["totalAmount"], invoice["balanceAmount"],
        " ".join(invoice["provisional"]), invoice["dueDate"], invoice["updatedAt"],
    )  # fmt: skip


class CsvPages(ConsoleFrame):
    async def invoices_csv(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        organizations = self._organizations(request, caller)
        filters = invoice_filters(query, organizations, requested_zone(request))
        sort = list_sort(query)
        lines: list[tuple[Any, ...]] = []
        key = None
        for _ in range(CSV_PAGES_MAX):
            page = await self._sources.sorted_invoices.page(filters, sort, CSV_PAGE_ROWS, key)
            for row in page.rows:
                model = (
                    invoice_from_row(row)
                    if filters.aging is None
                    else invoice_at_day_end(row, filters.aging.end_of_day)
                )
                lines.append(invoice_line(as_document(model)))
            if not page.later:
                return csv_file("invoices.csv", INVOICE_COLUMNS, lines)
            key = key_of(page.rows[-1], sort)
        raise _too_many()

    async def deliveries_csv(self, request: Request, caller: Caller) -> Response:
        filters = delivery_filters(request.query_params)
        log = self._sources.delivery_log
        lines: list[tuple[Any, ...]] = []
        before = None
        for _ in range(CSV_PAGES_MAX):
            rows = await log.deliveries(filters, CSV_PAGE_ROWS, before)
            for item in await summaries(rows, log):
                lines.append(
                    (
                        item.delivery_id, item.received_at, item.outcome.value, item.reason,
                        item.resolution is not None, item.event_type, item.notification_id,
                        item.event_position,
                    )
                )  # fmt: skip
            if len(rows) < CSV_PAGE_ROWS:
                return csv_file("deliveries.csv", DELIVERY_COLUMNS, lines)
            before = rows[-1].delivery_id
        raise _too_many()

    async def headline_csv(self, request: Request, caller: Caller) -> Response:
        organizations = self._organizations(request, caller)
        today = datetime.now(UTC).date()
        rows = await self._sources.headlines.per_currency(today, organizations)
        lines = [
            (
                row.currency, row.outstanding, row.overdue, row.open_invoices,
                row.collected_this_month, row.collected_last_month, row.dso_days, row.incomplete,
            )
            for row in rows
        ]  # fmt: skip
        return csv_file(f"outstanding-{today.isoformat()}.csv", HEADLINE_COLUMNS, lines)

    async def aging_csv(self, request: Request, caller: Caller) -> Response:
        asked = overview_inputs(
            request.query_params, requested_zone(request), self._organizations(request, caller)
        )
        items = await aging_report(self._queries, asked)
        lines = [
            (item["currency"], *(item[bucket] for bucket in AGING_BUCKETS),
             item["provisional"], item["incomplete"])
            for item in items
        ]  # fmt: skip
        return csv_file(f"aging-{asked.as_of.isoformat()}.csv", AGING_COLUMNS, lines)

    async def collections_csv(self, request: Request, caller: Caller) -> Response:
        asked = overview_inputs(
            request.query_params, requested_zone(request), self._organizations(request, caller)
        )
        items = await collections_report(self._queries, asked)
        lines = [
            (item["currency"], item["period"], item["first_day"], item["last_day"],
             item["amount"], item["provisional"], item["incomplete"])
            for item in items
        ]  # fmt: skip
        name = f"collections-{asked.collections_from}-{asked.collections_to}.csv"
        return csv_file(name, COLLECTION_COLUMNS, lines)
