"""The console's reports behind their charts and as CSV, over a real socket on both engines:
a collections bar opens the payments it sums, and each CSV file holds what its page shows."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.support.console_pages import OPERATOR, console_client, deliver, projected

PAYMENTS = (  # invoice, currency, balance before, balance after, when
    ("C-1", "USD", "100.00", "60.00", "2023-05-03T10:00:00Z"),
    ("C-2", "USD", "50.00", "25.50", "2023-05-03T23:30:00Z"),
    ("C-3", "USD", "80.00", "0.00", "2023-05-04T01:00:00Z"),
    ("C-4", "EUR", "70.00", "30.00", "2023-05-04T12:00:00Z"),
)
RANGE = {"from": "2023-05-01", "to": "2023-05-31", "interval": "day", "asOf": "2023-06-30"}


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    with console_client(database_url) as client:
        for number, currency, before, after, when in PAYMENTS:
            deliver(client, number, currency=currency, balance=before,
                    event_date="2023-05-01T09:00:00Z")  # fmt: skip
            paid = "paid" if after == "0.00" else "partial-payment"
            deliver(
                client, number, event_type=f"invoicing.customer.invoice.{paid}",
                notification_id=f"n-{number}-paid", currency=currency, balance=after,
                event_date=when,
            )  # fmt: skip
        projected(client, 2 * len(PAYMENTS))
        yield client


def bars(page: str, chart: str) -> dict[str, tuple[str, str | None]]:
    """Per bar of a chart: its exact value and where it leads."""
    figure = re.search(rf'<figure class="chart" data-chart="{chart}".*?</figure>', page, re.DOTALL)
    assert figure is not None, chart
    found = re.findall(
        r'(?:<a href="([^"]+)" class="drill">\s*)?<g class="bar[^"]*" data-key="([^"]+)" '
        r'data-value="([^"]*)"',
        figure.group(0),
    )
    return {key: (value, html.unescape(link) or None) for link, key, value in found}


def csv_of(client: httpx.Client, path: str) -> list[dict[str, str]]:
    answer = client.get(path, headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def export_link(page: str, report: str) -> str:
    [found] = re.findall(rf'href="([^"]+)" data-field="export-csv" data-report="{report}"', page)
    return html.unescape(found)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_each_collections_bar_opens_the_payments_that_add_up_to_it(
    console: httpx.Client, zone: str
) -> None:
    overview = console.get("/console", params={**RANGE, "tz": zone}, headers=OPERATOR)
    assert overview.status_code == 200, overview.text
    drilled = 0
    for currency in ("USD", "EUR"):
        for period, (value, link) in bars(overview.text, f"collections-{currency}").items():
            assert link is not None and link.startswith("/console/collections?")
            assert (zone == "UTC") == ("tz=" not in link)
            page = console.get(link, headers=OPERATOR)
            assert page.status_code == 200, page.text
            amounts = re.findall(r'<td class="amount" data-value="([^"]*)">', page.text)
            assert sum(Decimal(amount) for amount in amounts) == Decimal(value), (period, link)
            [total] = re.findall(r'data-figure="collected-total" data-value="([^"]*)"', page.text)
            assert Decimal(total) == Decimal(value)
            [export] = re.findall(r'href="([^"]+)" data-field="export-csv"', page.text)
            lines = csv_of(console, html.unescape(export))
            assert sum(Decimal(line["amount"]) for line in lines) == Decimal(value)
            assert {line["currency"] for line in lines} == {currency}
            drilled += len(lines)
    assert drilled == len(PAYMENTS)
    # In New York the payment at 01:00 UTC on the 4th was collected on the 3rd.
    usd = bars(overview.text, "collections-USD")
    if zone == "UTC":
        assert {day: value for day, (value, _) in usd.items()} == {
            "2023-05-03": "64.50", "2023-05-04": "80.00",
        }  # fmt: skip
    else:
        assert {day: value for day, (value, _) in usd.items()} == {"2023-05-03": "144.50"}


def test_the_overview_s_csv_files_hold_its_figures(console: httpx.Client) -> None:
    overview = console.get("/console", params=RANGE, headers=OPERATOR)
    aging = csv_of(console, export_link(overview.text, "aging"))
    assert {row["currency"] for row in aging} == {"USD", "EUR"}
    for row in aging:
        shown = bars(overview.text, f"aging-{row['currency']}")
        assert {bucket: value for bucket, (value, _) in shown.items()} == {
            bucket: row[bucket] for bucket in shown
        }
    collections = csv_of(console, export_link(overview.text, "collections"))
    for row in collections:
        value, _ = bars(overview.text, f"collections-{row['currency']}")[row["period"]]
        assert row["amount"] == value
    assert len(collections) == 3
    headline = csv_of(console, export_link(overview.text, "outstanding"))
    for row in headline:
        [shown] = re.findall(
            rf'<tr data-currency="{row["currency"]}">.*?data-figure="outstanding" '
            r'data-value="([^"]*)"',
            overview.text, re.DOTALL,
        )  # fmt: skip
        assert Decimal(row["outstanding"]) == Decimal(shown)
    assert {row["currency"] for row in headline} == {"USD", "EUR"}


def test_the_delivery_log_s_csv_lists_the_deliveries_its_page_lists(console: httpx.Client) -> None:
    sent = {"eventType": "invoicing.customer.invoice.send"}
    page = console.get("/console/deliveries", params=sent, headers=OPERATOR)
    [export] = re.findall(r'href="([^"]+)" data-field="export-csv"', page.text)
    rows = csv_of(console, html.unescape(export))
    listed = re.findall(r'<tr data-delivery-id="([0-9]+)"', page.text)
    assert [row["delivery"] for row in rows] == listed
    assert len(listed) == len(PAYMENTS)
    assert {row["outcome"] for row in rows} == {"accepted"}


def test_a_drill_down_refuses_what_it_cannot_read(console: httpx.Client) -> None:
    for query, named in (({"from": "2023-05-09", "to": "2023-05-01"}, "from"),
                         ({"currency": "DOLLARS"}, "currency"), ({"to": "May"}, "to")):  # fmt: skip
        answer = console.get("/console/collections", params=query, headers=OPERATOR)
        assert answer.status_code == 400 and f"{named}:" in html.unescape(answer.text)
