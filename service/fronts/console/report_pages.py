"""The console's receivables overview, its ingestion page, and its invoice list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from service.configured_keys import MissingCredentials
from service.domain.identity import OrganizationScope, invoices_in_stream
from service.domain.reports import AGING_BUCKETS
from service.domain.status import InvoiceStatus
from service.fronts.auth import Caller
from service.fronts.console.charts import bar_chart
from service.fronts.console.csv_files import same_filters
from service.fronts.console.frame import (
    INVOICES_PAGE_SIZE,
    OUTCOME_WINDOW_LABELS,
    OUTCOME_WINDOWS,
    ConsoleFrame,
)
from service.fronts.console.inputs import (
    InvalidInput,
    day_filter,
    small_form,
    text_filter,
)
from service.fronts.console.invoice_list import list_cursor, list_sort, page_links, sort_choices
from service.fronts.console.payment_sources import payment_sources
from service.fronts.console.receivables import (
    aging_report,
    collected_link,
    collections_report,
    overview_inputs,
    scope_parameters,
)
from service.fronts.console.views import (
    AGING_LABELS,
    aging_charts,
    as_document,
    collection_charts,
    provisional_items,
    see_other,
    trail_view,
)
from service.fronts.console.zones import requested_zone, with_zone, zone_name
from service.read.conditions import OPEN
from service.read.documents import invoice_at_day_end, invoice_from_row
from service.read.headline import DSO_DAYS
from service.read.invoice_pages import AgingBucketFilter, InvoiceFilters
from service.reconciler.reconciler import OrganizationNotChosen


class ReportPages(ConsoleFrame):
    """The first page for finance (headline figures, aging, collections), the ingestion page
    for whoever runs the service, and the invoice list."""

    async def overview(self, request: Request, caller: Caller) -> Response:
        asked = overview_inputs(
            request.query_params, requested_zone(request), self._organizations(request, caller)
        )
        as_of, interval, organization = asked.as_of, asked.interval, asked.organization
        kept = scope_parameters(request.query_params)
        aging = await aging_report(self._queries, asked)
        collections = await collections_report(self._queries, asked)
        return self._render(
            request,
            "overview.html",
            title="Receivables",
            as_of=as_of.isoformat(),
            interval=interval,
            collections_from=asked.collections_from.isoformat(),
            collections_to=asked.collections_to.isoformat(),
            organization=organization or "",
            csv_query=same_filters(request.query_params),
            headlines=await self._sources.headlines.per_currency(
                datetime.now(UTC).date(), asked.organizations
            ),
            dso_days=DSO_DAYS,
            aging_charts=aging_charts(aging, as_of, kept),
            aging_incomplete=[item["currency"] for item in aging if item["incomplete"]],
            aging_provisional=[
                f"{item['provisional']} {item['currency']}" for item in provisional_items(aging)
            ],
            collection_charts=collection_charts(
                collections, lambda item: collected_link(item, kept)
            ),
            collections_incomplete=[
                f"{item['period']} {item['currency']}" for item in collections if item["incomplete"]
            ],
            collections_provisional=[
                f"{item['period']} {item['provisional']} {item['currency']}"
                for item in provisional_items(collections)
            ],
        )

    async def operations(self, request: Request, caller: Caller) -> Response:
        """Ingestion and projection, for whoever runs the service."""
        window = request.query_params.get("outcomes") or "7d"
        if window not in (*OUTCOME_WINDOWS, "all"):
            raise InvalidInput("outcomes: must be 24h, 7d, 30d or all")
        since = None if window == "all" else datetime.now(UTC) - OUTCOME_WINDOWS[window]
        outcomes = await self._sources.delivery_outcomes.counts(since)
        return self._render(
            request,
            "operations.html",
            title="Ingestion",
            window=window,
            windows=[*OUTCOME_WINDOWS, "all"],
            window_labels=OUTCOME_WINDOW_LABELS,
            outcomes_chart=bar_chart(
                "delivery-outcomes",
                "Deliveries by outcome",
                "deliveries",
                [(name, name, count, str(count)) for name, count in outcomes.items()],
            ),
            lag=await self._projection_lag(),
        )

    async def reconcile(self, request: Request, caller: Caller) -> Response:
        """Asks Cybersource for one invoice now, then shows it with what was appended."""
        form = await small_form(request)
        number = text_filter(str(form.get("invoiceNumber", "")), "invoiceNumber")
        organization = text_filter(str(form.get("organizationId", "")), "organizationId")
        if number is None:
            raise InvalidInput("invoiceNumber: name the invoice to reconcile")
        try:
            client = self._sources.cybersource_client(counted=True)
        except MissingCredentials:
            outcome = "no_credentials"
        else:
            async with client:
                reconciler = self._sources.reconciler(client, counted=True)
                try:
                    reconciled = await reconciler.reconcile_invoice(number, organization)
                except OrganizationNotChosen as refused:
                    raise InvalidInput(f"organizationId: {refused}") from None
            failed = reconciled.error is not None
            outcome = "failed" if failed else f"appended_{reconciled.appended}"
        shown = {"invoiceNumber": number, "organizationId": organization or ""}
        target = "/console/invoices?" + urlencode({**shown, "reconciled": outcome})
        return see_other(with_zone(target, zone_name(requested_zone(request))))

    async def _projection_lag(self) -> dict[str, Any]:
        """How far the read models are behind the event store, in events and in seconds."""
        recorded = await self._events.highest_position()
        projected = await self._read_models.checkpoint()
        behind_seconds = 0.0
        if recorded > projected:
            oldest = await self._events.read_after(projected, 1)
            if oldest:
                behind_seconds = (datetime.now(UTC) - oldest[0].recorded_at).total_seconds()
        return {
            "recorded": recorded,
            "projected": projected,
            "events": max(recorded - projected, 0),
            "seconds": round(max(behind_seconds, 0.0), 1),
        }

    async def invoices(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        notice, failed = _reconcile_notice(query.get("reconciled"))
        number = text_filter(query.get("invoiceNumber"), "invoiceNumber")
        organization = text_filter(query.get("organizationId"), "organizationId")
        organizations = self._organizations(request, caller)
        filters = invoice_filters(query, organizations, requested_zone(request))
        context: dict[str, Any] = {
            "title": "Invoices",
            "statuses": list(InvoiceStatus),
            "search": {
                "invoiceNumber": number or "",
                "organizationId": organization or "",
                "status": filters.status or "",
                "currency": filters.currency or "",
                "customerName": filters.customer_name or "",
                "customerEmail": filters.customer_email or "",
            },
            "aging": filters.aging,
            "operator": caller.is_operator,
            "notice": notice,
            "notice_failed": failed,
            "aging_label": AGING_LABELS.get(filters.aging.bucket) if filters.aging else None,
            "found": [],
            "listed": [],
            "older": None,
            "newer": None,
            "sort": None,
            "sorts": [],
        }
        if number is not None:
            rows = await self._queries.invoices_numbered(number, organizations)
            trails = {
                key.organization_id: sorted(events, key=lambda event: event.position)
                for key, events in invoices_in_stream(
                    number, await self._events.read_stream(number)
                ).items()
            }
            today = datetime.now(UTC).date()
            # Each fact's delivery, for whoever may read the delivery log (it spans merchants).
            shown = [e.position for r in rows for e in trails.get(r.organization_id, [])]
            producers = (
                await self._sources.delivery_log.producing_deliveries(shown)
                if caller.sees_every_merchant
                else {}
            )
            found = []
            for row in rows:
                invoice = as_document(invoice_from_row(row))
                events = [
                    {**event, "deliveryId": producers.get(event["position"])}
                    for event in trail_view(trails.get(row.organization_id, []))
                ]
                found.append(
                    {
                        "invoice": invoice,
                        "events": events,
                        "payment_sources": payment_sources(invoice["payments"], events),
                        "days_overdue": days_overdue(row, today),
                    }
                )
            context["found"] = found
        else:
            sort = list_sort(query)
            key, before = list_cursor(query, sort)
            page = await self._sources.sorted_invoices.page(
                filters, sort, INVOICES_PAGE_SIZE, key, before=before
            )
            # Behind an aging bucket, each invoice as it stood at the end of that day.
            context["listed"] = [
                as_document(
                    invoice_from_row(row)
                    if filters.aging is None
                    else invoice_at_day_end(row, filters.aging.end_of_day)
                )
                for row in page.rows
            ]
            links = page_links(query, sort, page)
            context["older"], context["newer"] = links["next"], links["previous"]
            context["sort"] = {"by": sort.by, "descending": sort.descending}
            context["sorts"] = sort_choices(query, sort)
            context["csv_query"] = same_filters(query)
        return self._render(request, "invoices.html", **context)


def invoice_filters(
    query: Mapping[str, str], organizations: OrganizationScope, zone: tzinfo = UTC
) -> InvoiceFilters:
    """The invoice list's filters: status, currency, customer, and an aging bucket as of a day
    (where an aging chart's bar leads)."""
    status = text_filter(query.get("status"), "status")
    if status is not None and status not in set(InvoiceStatus):
        raise InvalidInput("status: must be one of " + ", ".join(InvoiceStatus))
    currency = text_filter(query.get("currency"), "currency")
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isalpha()
    ):
        raise InvalidInput("currency: must be a three-letter code")
    bucket = text_filter(query.get("agingBucket"), "agingBucket")
    as_of = day_filter(query.get("asOf"), "asOf")
    aging = None
    if bucket is not None:
        if bucket not in AGING_BUCKETS:
            raise InvalidInput("agingBucket: must be one of " + ", ".join(AGING_BUCKETS))
        aging = AgingBucketFilter(bucket, as_of or datetime.now(zone).date(), zone)
    elif as_of is not None:
        raise InvalidInput("asOf: is the day of an agingBucket: name the bucket too")
    return InvoiceFilters(
        organizations=organizations,
        status=status,
        currency=currency.upper() if currency else None,
        aging=aging,
        customer_name=text_filter(query.get("customerName"), "customerName"),
        customer_email=text_filter(query.get("customerEmail"), "customerEmail"),
    )


def days_overdue(row: Any, today: date) -> int | None:
    """How many days past its due date an open invoice is today; None when it is not."""
    if row.status not in OPEN or row.due_date is None or row.due_date >= today:
        return None
    return int((today - row.due_date).days)


def _reconcile_notice(outcome: str | None) -> tuple[str | None, bool]:
    """What the page says after "Reconcile now" (its answer travels in the redirect)."""
    if outcome is None:
        return None, False
    if outcome == "no_credentials":
        return "Not reconciled: no Cybersource credentials are configured.", True
    if outcome == "failed":
        return "Not reconciled: Cybersource did not answer usefully (the log says why).", True
    appended = outcome.removeprefix("appended_")
    if not appended.isdigit():
        return None, False
    return f"Reconciled: {appended} new fact(s) appended.", False
