"""The operator console in a real browser: sign in, read the charts, filter deliveries, find an
invoice's audit trail; over a real socket, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from service.app import create_app
from service.settings import load_settings
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, encode, signed_headers

TOKEN = "console-browser-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPEN_STATUSES = ("CREATED", "SENT", "PARTIAL", "PENDING")
AGING_BUCKETS = ("current", "days1To30", "days31To60", "days61To90", "over90", "noDueDate")
TODAY = datetime.now(UTC).date()
DEAD_LETTER = b'{"notificationId": "not closed'


def notification(kind: str, invoice: str, currency: str, balance: str, due: date) -> bytes:
    return encode(
        {
            "notificationId": f"{invoice}-{kind}",
            "eventType": f"invoicing.customer.invoice.{kind}",
            "eventDate": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "webhookId": "wh-console",
            "payloads": [
                {
                    "data": {
                        "invoiceNumber": invoice,
                        "balanceAmount": balance,
                        "totalAmount": "100.00",
                        "currency": currency,
                        "dueDate": due.isoformat(),
                        "payerName": "Tanya Lee",
                        "emailTo": "tanya@example.com",
                        "organizationID": "console-org",
                    }
                }
            ],
        }
    )


SEEDED = [
    notification("send", "INV-100", "USD", "100.00", TODAY - timedelta(days=45)),
    notification("send", "INV-101", "USD", "100.00", TODAY + timedelta(days=10)),
    notification("send", "INV-200", "EUR", "100.00", TODAY - timedelta(days=5)),
    notification("partial-payment", "INV-200", "EUR", "60.00", TODAY - timedelta(days=5)),
]


@pytest.fixture
def console_url(database_url: str) -> Iterator[str]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=f"operator:{TOKEN}"
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        for body in [*SEEDED, SEEDED[0]]:  # the repeat is recorded as a duplicate
            answer = client.post(
                "/webhooks/cybersource", content=body, headers=signed_headers(body)
            )
            assert answer.status_code == 200, answer.text
        refused = client.post(
            "/webhooks/cybersource", content=DEAD_LETTER, headers=signed_headers(DEAD_LETTER)
        )
        assert refused.status_code == 422
        # Wait until the read models reflect every event before the browser looks.
        v1(client, "/v1/invoices", minPosition=len(SEEDED))
        yield base_url


def v1(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def chart_values(page: Page, chart: str) -> dict[str, str]:
    bars = page.locator(f'figure[data-chart="{chart}"] g.bar')
    return {
        str(bars.nth(index).get_attribute("data-key")): str(
            bars.nth(index).get_attribute("data-value")
        )
        for index in range(bars.count())
    }


def sign_in(page: Page, url: str) -> None:
    page.goto(url)
    assert page.url.startswith(url.split("?")[0].rsplit("/console", 1)[0] + "/console/login")
    page.fill('input[name="token"]', TOKEN)
    page.click('button:has-text("Sign in")')
    page.wait_for_load_state()


def test_an_operator_signs_in_reads_the_charts_filters_deliveries_and_finds_an_audit_trail(
    console_url: str, browser: Browser, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    api = httpx.Client(base_url=console_url)
    request.addfinalizer(api.close)
    engine = request.node.callspec.params["database_url"]

    overview = f"{console_url}/console?asOf={TODAY.isoformat()}&interval=month"
    sign_in(page, overview)
    assert page.locator("h1").inner_text() == "Receivables"

    # The headline figures are /v1's: outstanding and open invoices per currency, overdue as
    # the aging report's buckets past due.
    outstanding = v1(api, "/v1/reports/outstanding")["items"]
    aging_today = v1(api, "/v1/reports/aging", asOf=TODAY.isoformat())["items"]
    for item in outstanding:
        row = page.locator(f'table.headline tr[data-currency="{item["currency"]}"]')
        figure = row.locator('[data-figure="outstanding"]')
        assert Decimal(figure.get_attribute("data-value") or "") == Decimal(item["balanceAmount"])
        assert figure.locator(".money").get_attribute("title") == str(
            Decimal(figure.get_attribute("data-value") or "")
        )
        assert row.locator('[data-figure="open-invoices"]').inner_text() == str(item["invoices"])
        [aged] = [other for other in aging_today if other["currency"] == item["currency"]]
        overdue = sum(
            Decimal(aged[bucket] or 0)
            for bucket in AGING_BUCKETS[1:5]  # past due, with a date
        )
        shown = row.locator('[data-figure="overdue"]').get_attribute("data-value") or ""
        assert Decimal(shown) == overdue

    # The aging chart shows exactly what /v1 answers, bucket by bucket, in each currency.
    aging = v1(api, "/v1/reports/aging", asOf=TODAY.isoformat())["items"]
    assert {item["currency"] for item in aging} == {"USD", "EUR"}
    for item in aging:
        shown = chart_values(page, f"aging-{item['currency']}")
        assert shown == {bucket: item[bucket] or "" for bucket in AGING_BUCKETS}
    assert chart_values(page, "aging-USD")["days31To60"] == "100.00"
    title = page.locator('figure[data-chart="aging-USD"] g.bar[data-key="current"] title')
    assert title.text_content() == "Current: 100.00 USD"

    # A bar leads to the invoices behind it, each as it stood that day: they add up to the bar.
    page.click('figure[data-chart="aging-USD"] a:has(g.bar[data-key="days31To60"])')
    page.wait_for_url("**/console/invoices?agingBucket=days31To60*")
    assert "31-60 days" in page.locator('[data-field="aging-bucket"]').inner_text()
    balances = page.locator("table.invoices tbody tr td.amount:nth-of-type(6) .money")
    assert sum(
        Decimal(title) for title in balances.evaluate_all("spans => spans.map(span => span.title)")
    ) == Decimal("100.00")
    page.go_back()

    # Collections per month, as /v1 answers for the same range.
    start = page.locator('input[name="from"]').input_value()
    collections = v1(
        api, "/v1/reports/collections", **{"from": start, "to": TODAY.isoformat()}, interval="month"
    )["items"]
    assert [(c["period"], c["amount"]) for c in collections if c["currency"] == "EUR"] == list(
        chart_values(page, "collections-EUR").items()
    )
    assert "40.00" in chart_values(page, "collections-EUR").values()

    page.screenshot(path=str(artifacts / f"console-{engine}.png"), full_page=True)

    # Delivery outcomes, on the ingestion page: five stored notifications (one a repeat) and
    # one dead letter.
    page.click('nav a:has-text("Ingestion")')
    page.wait_for_url("**/console/operations*")
    outcomes = chart_values(page, "delivery-outcomes")
    assert (outcomes["accepted"], outcomes["duplicate"], outcomes["rejected"]) == ("4", "1", "1")
    assert page.locator('[data-figure="lag-events"] .figure').inner_text() == "0"
    page.screenshot(path=str(artifacts / f"console-ingestion-{engine}.png"), full_page=True)

    # The delivery log, filtered to dead letters through the form.
    page.click('nav a:has-text("Deliveries")')
    assert page.locator("tbody tr[data-delivery-id]").count() == 6
    page.select_option('select[name="outcome"]', "rejected")
    page.click('button:has-text("Filter")')
    page.wait_for_url("**/console/deliveries?outcome=rejected*")
    rows = page.locator("tbody tr[data-delivery-id]")
    assert rows.count() == 1
    assert rows.first.locator(".badge").inner_text() == "rejected"
    assert (
        rows.first.locator('[data-field="delivery-reason"]')
        .inner_text()
        .startswith("unusable_body")
    )
    page.screenshot(path=str(artifacts / f"console-deliveries-{engine}.png"), full_page=True)

    rows.first.locator("a").click()
    page.wait_for_url("**/console/deliveries/*")
    assert page.locator('[data-field="outcome"]').inner_text() == "rejected"
    assert page.locator("pre.body").inner_text() == DEAD_LETTER.decode()
    # Not JSON with any reader: the replay is recorded and says it still does not read.
    page.click('form[action$="/replay"] button:has-text("Replay")')
    page.wait_for_load_state()
    result = page.locator('[data-field="replay-result"]').inner_text()
    assert result.startswith("Replayed: unreadable")
    # It still waits for an operator, who resolves it with a reason: it leaves the queue.
    page.fill(
        'form[action$="/resolution"] input[name="reason"]', "Entered by hand from the statement"
    )
    page.click('button:has-text("Resolve")')
    page.wait_for_load_state()
    assert (
        page.locator('[data-field="resolution"]')
        .inner_text()
        .endswith(": Entered by hand from the statement")
    )
    page.goto(f"{console_url}/console/deliveries?waiting=true")
    assert page.locator("tbody tr[data-delivery-id]").count() == 0

    # An invoice found by number, with its audit trail as /v1 lists it.
    page.click('nav a:has-text("Invoices")')
    page.fill('input[name="invoiceNumber"]', "INV-200")
    page.click('button:has-text("Find")')
    page.wait_for_url("**/console/invoices?invoiceNumber=INV-200*")
    trail = v1(api, "/v1/invoices/INV-200/events")["items"]
    positions = page.locator("table.events tbody tr").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.position))"
    )
    assert positions == [event["position"] for event in trail]
    assert "60.00 EUR" in page.locator("section.invoice dl").inner_text()
    page.screenshot(path=str(artifacts / f"console-invoice-{engine}.png"), full_page=True)

    # The customer's statement, from the invoice page: what it owes is what /v1 lists for it,
    # and it prints without the console around it.
    page.click('section.invoice a:has-text("statement")')
    page.wait_for_url("**/console/statements?*")
    theirs = v1(api, "/v1/invoices", customerEmail="tanya@example.com", currency="EUR")["items"]
    owed = sum(Decimal(item["balanceAmount"]) for item in theirs if item["status"] in OPEN_STATUSES)
    assert Decimal(page.locator('[data-figure="owed"]').get_attribute("data-value") or "") == owed
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    page.screenshot(path=str(artifacts / f"console-statement-print-{engine}.png"), full_page=True)
    page.emulate_media(media="screen")
    page.close()


def test_an_operator_corrects_a_conflicting_payment_through_the_console_form(
    console_url: str, browser: Browser, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    """INV-200's partial payment delivered again saying 50.00 is owed, not 60.00: recorded
    through the form, the invoice owes 50.00 and its trail marks the corrected event."""
    api = httpx.Client(base_url=console_url)
    request.addfinalizer(api.close)
    engine = request.node.callspec.params["database_url"]
    conflicting = notification(
        "partial-payment", "INV-200", "EUR", "50.00", TODAY - timedelta(days=5)
    )
    answer = api.post(
        "/webhooks/cybersource", content=conflicting, headers=signed_headers(conflicting)
    )
    assert answer.status_code == 200, answer.text
    [conflict] = v1(api, "/v1/deliveries", outcome="conflict")["items"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, f"{console_url}/console/deliveries/{conflict['deliveryId']}")
    page.fill(
        'form[action$="/corrections"] input[name="reason"]',
        "The payer's bank confirmed 50.00 is owed",
    )
    page.click('button:has-text("Record the delivered version as a correction")')
    page.wait_for_load_state()
    notice = page.locator('[data-field="replay-result"]').inner_text()
    assert notice.startswith("Correction recorded at positions ")
    position = int(notice.rsplit(" ", 1)[1])

    invoice = v1(api, "/v1/invoices/INV-200", minPosition=position)
    assert (invoice["balanceAmount"], invoice["paidAmount"]) == ("50.00", "50.00")
    page.goto(f"{console_url}/console/invoices?invoiceNumber=INV-200")
    assert "50.00 EUR" in page.locator("section.invoice dl").inner_text()
    corrected = page.locator("table.events tbody tr", has_text=f"corrected by {position}")
    assert corrected.count() == 1
    trail = v1(api, "/v1/invoices/INV-200/events")["items"]
    [replaced] = [event for event in trail if event.get("correctedBy") == position]
    assert corrected.get_attribute("data-position") == str(replaced["position"])
    page.screenshot(path=str(artifacts / f"console-correction-{engine}.png"), full_page=True)
    page.close()


def test_at_420_pixels_every_chart_stays_inside_its_card(
    console_url: str, browser: Browser, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    engine = request.node.callspec.params["database_url"]
    page = browser.new_page(viewport={"width": 420, "height": 900})
    sign_in(page, f"{console_url}/console?asOf={TODAY.isoformat()}&interval=month")
    charts = page.locator("figure.chart svg")
    assert charts.count() >= 3
    for index in range(charts.count()):
        chart = charts.nth(index)
        drawn = chart.bounding_box()
        card = chart.locator("xpath=ancestor::section[1]").bounding_box()
        assert drawn is not None and card is not None
        assert drawn["x"] >= card["x"] and drawn["x"] + drawn["width"] <= card["x"] + card["width"]
    page.screenshot(path=str(artifacts / f"console-narrow-{engine}.png"), full_page=True)
    page.close()


def test_the_browser_keeps_a_session_not_the_token_and_signing_out_ends_it(
    console_url: str, browser: Browser
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, f"{console_url}/console/invoices")
    assert page.locator("h1").inner_text() == "Invoices"
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "ledger_console_session", True, "Strict"
    )  # fmt: skip
    assert TOKEN not in cookie["value"]
    stolen = {"Cookie": f"{cookie['name']}={cookie['value']}"}
    page.click('button:has-text("Sign out")')
    page.wait_for_url("**/console/login")
    assert page.context.cookies() == []
    replayed = httpx.get(f"{console_url}/console/invoices", headers=stolen, timeout=30)
    assert (replayed.status_code, replayed.headers["location"]) == (
        303, "/console/login?next=%2Fconsole%2Finvoices"
    )  # fmt: skip
    page.close()


def test_finance_reads_times_in_its_zone_drills_into_collections_sorts_replays_and_exports(
    console_url: str, browser: Browser, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    engine = request.node.callspec.params["database_url"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, f"{console_url}/console?interval=month")

    # A time zone chosen once is kept by every link.
    page.fill('form.zone input[name="tz"]', "Asia/Tokyo")
    page.click('form.zone button:has-text("Show")')
    page.wait_for_url("**tz=Asia%2FTokyo*")
    assert "(days in Asia/Tokyo)" in page.locator("#collections").inner_text()

    # The EUR collections bar opens the payment behind it: its amounts add up to the bar.
    [(period, collected)] = chart_values(page, "collections-EUR").items()
    page.click(f'figure[data-chart="collections-EUR"] a:has(g.bar[data-key="{period}"])')
    page.wait_for_url("**/console/collections?*")
    assert "tz=Asia%2FTokyo" in page.url
    amounts = page.locator("table.collected td.amount").evaluate_all(
        "cells => cells.map(cell => cell.dataset.value)"
    )
    assert sum(Decimal(amount) for amount in amounts) == Decimal(collected) == Decimal("40.00")
    when = page.locator("table.collected time").first
    assert str(when.get_attribute("title")).endswith("Z")
    assert when.inner_text().endswith(" JST")
    page.screenshot(path=str(artifacts / f"console-collected-{engine}.png"), full_page=True)

    # The invoice list, by balance, largest first.
    page.click('nav a:has-text("Invoices")')
    page.wait_for_url("**/console/invoices?tz=Asia%2FTokyo")
    page.click('a[data-sort="balance-desc"]')
    page.wait_for_url("**sort=balance*")
    balances = page.locator("table.invoices tbody tr td.amount:nth-of-type(6) .money")
    shown = [Decimal(t) for t in balances.evaluate_all("spans => spans.map(span => span.title)")]
    assert shown == sorted(shown, reverse=True) and len(shown) == 3
    assert page.locator("table.invoices time").first.inner_text().endswith(" JST")
    page.screenshot(path=str(artifacts / f"console-sorted-{engine}.png"), full_page=True)

    # The queue's dead letter, ticked and replayed in one action.
    page.goto(f"{console_url}/console/deliveries?waiting=true")
    page.check('input[name="deliveryId"]')
    page.click('button:has-text("Replay the ticked deliveries")')
    page.wait_for_url("**/console/deliveries/replay*")
    assert page.locator("table.replayed tbody tr").get_attribute("data-result") == "unreadable"
    page.screenshot(path=str(artifacts / f"console-bulk-replay-{engine}.png"), full_page=True)

    # A payments export of the last days, recorded through the form.
    page.click('nav a:has-text("Exports")')
    # The payment was an hour ago: two days back hold it, whatever the hour.
    since = (TODAY - timedelta(days=2)).isoformat()
    page.fill('form[data-field="new-export"] input[name="from"]', since)
    page.fill('form[data-field="new-export"] input[name="to"]', TODAY.isoformat())
    page.click('button:has-text("Record the export")')
    page.wait_for_url("**/console/exports?created=*")
    assert page.locator('[data-field="export-created"]').is_visible()
    assert page.locator("table.exports tbody tr td.amount").first.inner_text() == "1"
    page.screenshot(path=str(artifacts / f"console-exports-{engine}.png"), full_page=True)
    page.close()
