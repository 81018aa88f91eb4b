"""How the console shows what it reads: documents as template values, charts, trails,
bodies, and the answers to refused sign-ins."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from pydantic import BaseModel
from starlette.responses import RedirectResponse, Response

from service.domain.events import RecordedEvent
from service.domain.invoice import corrected_by
from service.domain.money import currency_exponent
from service.domain.reports import AGING_BUCKETS
from service.fronts.console.charts import BarChart, bar_chart
from service.fronts.errors import ApiError
from service.read.documents import event_document

AGING_LABELS = {
    "current": "Current",
    "days1To30": "1-30 days",
    "days31To60": "31-60 days",
    "days61To90": "61-90 days",
    "over90": "Over 90 days",
    "noDueDate": "No due date",
}
# The pages show personal data (payer names, bodies): nothing is cached, framed or leaked
# through a Referer, and the page loads nothing but its own stylesheet.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Chromium send Origin: null
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def as_document(model: BaseModel) -> dict[str, Any]:
    """An /v1 document as the API answers it (camelCase, JSON types), for a template."""
    document: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return document


def provisional_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows part of whose money is provisional."""
    return [item for item in items if item["provisional"] and Decimal(item["provisional"])]


def aging_charts(
    items: list[dict[str, Any]], as_of: date, kept: Mapping[str, str]
) -> list[BarChart]:
    """A chart per currency; each bucket's bar links to the invoices in it, as they stood
    (``kept``: the merchant and organization filters the page was read with)."""
    return [
        bar_chart(
            f"aging-{item['currency']}",
            f"Aging, {item['currency']}",
            item["currency"],
            [
                (bucket, AGING_LABELS[bucket], amount_of(item[bucket]), item[bucket])
                for bucket in AGING_BUCKETS
            ],
            {
                bucket: "/console/invoices?"
                + urlencode(
                    {
                        "agingBucket": bucket,
                        "asOf": as_of.isoformat(),
                        "currency": item["currency"] or "",
                        **kept,
                    }
                )
                for bucket in AGING_BUCKETS
            },
        )
        for item in items
    ]


def collection_charts(
    items: list[dict[str, Any]], link_of: Callable[[dict[str, Any]], str] | None = None
) -> list[BarChart]:
    """A chart per currency; each period's bar links (``link_of``) to what it collected."""
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_currency.setdefault(item["currency"], []).append(item)
    return [
        bar_chart(
            f"collections-{currency}",
            f"Collections, {currency}",
            currency,
            [
                (item["period"], item["period"], amount_of(item["amount"]), item["amount"])
                for item in rows
            ],
            {item["period"]: link_of(item) for item in rows} if link_of else None,
        )
        for currency, rows in sorted(by_currency.items())
    ]


def money(amount: Decimal | str | None, currency: str | None) -> Markup:
    """An amount for people: thousands separated, as many decimals as the currency has
    (``1,829.50 USD``, ``115,010 JPY``, ``12.345 KWD``) and never fewer than it holds, so
    nothing is rounded away; the exact value in its title."""
    if amount is None:
        return Markup("unknown")
    value = Decimal(amount)
    # Decimals it holds, trailing zeros aside (PostgreSQL answers NUMERIC(38, 6) as 60.000000).
    exponent = value.normalize().as_tuple().exponent
    held = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    places = max(currency_exponent(currency) if currency else 2, held)
    code = f" {currency}" if currency else ""
    return Markup('<span class="money" title="{}">{}{}</span>').format(
        f"{value:f}", f"{value:,.{places}f}", code
    )


def amount_of(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def trail_view(events: Sequence[RecordedEvent]) -> list[dict[str, Any]]:
    replaced = corrected_by(events)
    return [
        event_view(as_document(event_document(event, replaced.get(event.position))))
        for event in events
    ]


def see_other(target: str) -> Response:
    """A 303 with the pages' security headers: it may carry a cookie change."""
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def event_view(document: Mapping[str, Any]) -> dict[str, Any]:
    return {**document, "dataText": json.dumps(document["data"], indent=2, sort_keys=True)}


def body_text(text: str | None) -> str | None:
    """The stored body for an operator; JSON is indented, anything else shown as it came."""
    if text is None:
        return None
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        pretty.encode("utf-8")  # an escaped lone surrogate cannot be shown decoded
    except ValueError:  # UnicodeEncodeError included
        return text
    return pretty


def retry_after_headers(error: ApiError) -> dict[str, str]:
    """The Retry-After of a throttled answer, for the page that tells a person to wait."""
    return {name: value for name, value in error.headers.items() if name == "Retry-After"}


def sign_in_problem(refused: ApiError) -> str:
    if refused.status_code == 429:
        wait = refused.headers.get("Retry-After", "a few")
        return f"Too many wrong tokens from this address: try again in {wait} seconds."
    return "That token is not valid."
