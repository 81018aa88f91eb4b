"""Behind a bar of the collections chart: each payment collected in its days (in the page's
zone), in its currency, and their sum, which is the bar's; as a page and as CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.domain.reports import start_of_day, start_of_day_after
from service.fronts.auth import Caller
from service.fronts.console.csv_files import csv_file, same_filters
from service.fronts.console.frame import ConsoleFrame
from service.fronts.console.inputs import InvalidInput, day_filter, text_filter
from service.fronts.console.zones import requested_zone
from service.read.collected_payments import COLLECTIONS_LISTED_MAX, CollectedLines, known_sum
from service.read.queries import COLLECTION_DAYS_MAX

COLLECTED_COLUMNS = (
    "collected_at", "organization", "invoice", "currency", "amount", "provisional",
)  # fmt: skip


class CollectionPages(ConsoleFrame):
    async def collected(self, request: Request, caller: Caller) -> Response:
        asked, lines = await self._collected(request, caller)
        total, incomplete = known_sum(lines.rows)
        return self._render(
            request,
            "collections.html",
            title="Collected",
            asked=asked,
            lines=[dict(row._mapping) for row in lines.rows],
            total=None if total is None else str(total),
            incomplete=incomplete,
            cut=lines.cut,
            listed_max=COLLECTIONS_LISTED_MAX,
            csv_query=same_filters(request.query_params),
        )

    async def collected_csv(self, request: Request, caller: Caller) -> Response:
        asked, lines = await self._collected(request, caller)
        if lines.cut:
            raise InvalidInput(f"from, to: more than {COLLECTIONS_LISTED_MAX} payments")
        rows = [
            (row.collected_at, row.organization_id, row.invoice_number, row.currency,
             row.amount, row.provisional)
            for row in lines.rows
        ]  # fmt: skip
        name = f"collected-{asked['from']}-{asked['to']}.csv"
        return csv_file(name, COLLECTED_COLUMNS, rows)

    async def _collected(
        self, request: Request, caller: Caller
    ) -> tuple[dict[str, Any], CollectedLines]:
        query = request.query_params
        zone = requested_zone(request)
        today = datetime.now(zone).date()
        first = day_filter(query.get("from"), "from") or today
        last = day_filter(query.get("to"), "to") or first
        if first > last:
            raise InvalidInput("from: must not be after to")
        if (last - first).days > COLLECTION_DAYS_MAX:
            raise InvalidInput(f"from, to: at most {COLLECTION_DAYS_MAX} days apart")
        currency = query.get("currency")
        if currency is not None and currency != "":
            currency = currency.upper()
            if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                raise InvalidInput("currency: must be a three-letter code")
        organization = text_filter(query.get("organizationId"), "organizationId")
        lines = await self._sources.collected_payments.between(
            start_of_day(first, zone), start_of_day_after(last, zone), currency,
            self._organizations(request, caller),
        )  # fmt: skip
        asked = {
            "from": first.isoformat(), "to": last.isoformat(), "currency": currency,
            "organizationId": organization or "", "zone": str(getattr(zone, "key", UTC)),
        }  # fmt: skip
        return asked, lines
