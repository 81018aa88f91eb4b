"""What the receivables overview asks for (its aging day, its collections range and period,
its organization, in the page's zone) and the two reports it reads, shared by the page, its
CSV files and the collections' drill-down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from service.domain.identity import OrganizationScope
from service.domain.reports import AGING_BUCKETS, Interval, period_days
from service.fronts.console.frame import COLLECTION_PERIODS
from service.fronts.console.inputs import InvalidInput, day_filter, text_filter
from service.read.documents import report_items
from service.read.queries import COLLECTION_DAYS_MAX, InvoiceQueries

AGING_AMOUNTS = {**{name: name for name in AGING_BUCKETS}, "provisional_balance": "provisional"}
COLLECTION_AMOUNTS = {"amount": "amount", "provisional_amount": "provisional"}


@dataclass(frozen=True, slots=True)
class OverviewInputs:
    as_of: date
    interval: Interval
    collections_from: date
    collections_to: date
    organization: str | None
    zone: tzinfo
    # What the reports read: the merchant and organization asked for, within the caller's.
    organizations: OrganizationScope = None


def scope_parameters(query: Mapping[str, str]) -> dict[str, str]:
    """The filters a drill-down link keeps: the merchant and organization a page was read for."""
    return {name: query[name] for name in ("merchant", "organizationId") if query.get(name)}


def overview_inputs(
    query: Mapping[str, str], zone: tzinfo, organizations: OrganizationScope = None
) -> OverviewInputs:
    today = datetime.now(zone).date()
    as_of = day_filter(query.get("asOf"), "asOf") or today
    interval = query.get("interval") or "month"
    if interval not in COLLECTION_PERIODS:
        raise InvalidInput("interval: must be day, week or month")
    collections_to = day_filter(query.get("to"), "to") or today
    collections_from = day_filter(query.get("from"), "from") or (
        collections_to - timedelta(days=COLLECTION_PERIODS[interval])
    )
    if collections_from > collections_to:
        raise InvalidInput("from: must not be after to")
    if (collections_to - collections_from).days > COLLECTION_DAYS_MAX:
        raise InvalidInput(f"from, to: at most {COLLECTION_DAYS_MAX} days apart")
    organization = text_filter(query.get("organizationId"), "organizationId")
    chosen: Interval = interval  # type: ignore[assignment]
    return OverviewInputs(
        as_of, chosen, collections_from, collections_to, organization, zone, organizations
    )


async def aging_report(queries: InvoiceQueries, asked: OverviewInputs) -> list[dict[str, Any]]:
    rows = await queries.aging(asked.as_of, asked.organizations, asked.zone)
    return report_items(rows, AGING_AMOUNTS)


async def collections_report(
    queries: InvoiceQueries, asked: OverviewInputs
) -> list[dict[str, Any]]:
    rows = await queries.collections(
        asked.collections_from, asked.collections_to, asked.interval, asked.organizations,
        asked.zone,
    )  # fmt: skip
    items = report_items(rows, COLLECTION_AMOUNTS)
    for item in items:
        first, last = period_days(item["period"], asked.interval)
        item["first_day"] = max(first, asked.collections_from)
        item["last_day"] = min(last, asked.collections_to)
    return items


def collected_link(item: Mapping[str, Any], kept: Mapping[str, str]) -> str:
    """Where a collections bar leads: the payments collected in its days, in its currency."""
    return "/console/collections?" + urlencode(
        {
            "from": item["first_day"].isoformat(),
            "to": item["last_day"].isoformat(),
            "currency": item["currency"] or "",
            **kept,
        }
    )
