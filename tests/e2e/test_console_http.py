"""The console's pages as an HTTP client sees them, over a real socket on both engines: the
headers every answer carries, and pages that must render whatever a delivery held."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from service.app import create_app
from service.fronts.console.frame import INVOICES_PAGE_SIZE
from service.settings import load_settings
from tests.support.cybersource_sandbox import (
    MERCHANT,
    cybersource_environment,
    drive,
    new_invoice,
)
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

TOKEN = "console-http-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=f"operator:{TOKEN}"
    )
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_the_stylesheet_and_the_redirect_to_sign_in_carry_the_security_headers(
    console: httpx.Client,
) -> None:
    stylesheet = console.get("/console/console.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert_security_headers(stylesheet)
    redirect = console.get("/console/deliveries")
    assert (redirect.status_code, redirect.headers["location"]) == (
        303, "/console/login?next=%2Fconsole%2Fdeliveries"
    )  # fmt: skip
    assert_security_headers(redirect)


def test_a_dead_letter_holding_a_lone_surrogate_escape_is_shown_as_it_came(
    console: httpx.Client,
) -> None:
    body = b'{"notificationId": "n-surrogate", "payloads": [{"data": {"payerName": "\\ud800"}}]}'
    answer = console.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert answer.status_code == 422, answer.text
    [delivery] = console.get("/v1/deliveries", headers=OPERATOR).json()["items"]
    page = console.get(f"/console/deliveries/{delivery['deliveryId']}", headers=OPERATOR)
    assert page.status_code == 200, page.text
    assert "\\ud800" in page.text
    assert_security_headers(page)


def deliver(console: httpx.Client, number: str) -> None:
    body = encode(invoice_notification(number, notification_id=f"n-{number}"))
    answer = console.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert answer.status_code == 200, answer.text


def listed_numbers(page: str) -> list[str]:
    return re.findall(r"invoiceNumber=(INV-[0-9]+)&", page)


def test_recently_updated_invoices_are_listed_newest_first_page_by_page(
    console: httpx.Client,
) -> None:
    count = INVOICES_PAGE_SIZE + 3
    for index in range(count):
        deliver(console, f"INV-{index:03d}")
    console.get("/v1/invoices", params={"minPosition": count}, headers=OPERATOR)
    first = console.get("/console/invoices", headers=OPERATOR)
    assert first.status_code == 200, first.text
    newest = listed_numbers(first.text)
    assert newest[:3] == ["INV-052", "INV-051", "INV-050"]
    assert len(newest) == INVOICES_PAGE_SIZE
    [older_link] = re.findall(r'href="/console/invoices(\?[^"]+)" rel="next"', first.text)
    second = console.get("/console/invoices" + html.unescape(older_link), headers=OPERATOR)
    assert listed_numbers(second.text) == ["INV-002", "INV-001", "INV-000"]
    assert 'rel="next"' not in second.text


def test_the_delivery_log_filters_by_reason_and_a_failed_replay_is_shown_as_a_problem(
    console: httpx.Client,
) -> None:
    deliver(console, "INV-100")
    dead_letter = b'{"notificationId": "n-unread", "payloads": [{"data": {}}]}'
    answer = console.post(
        "/webhooks/cybersource", content=dead_letter, headers=signed_headers(dead_letter)
    )
    assert answer.status_code == 422
    assert console.post("/webhooks/cybersource", content=b"{}").status_code == 401  # unsigned

    page = console.get("/console/deliveries", params={"reason": "unusable_body"}, headers=OPERATOR)
    shown = re.findall(r'data-delivery-id="([0-9]+)"', page.text)
    assert len(shown) == 1
    assert 'value="unusable_body"' in page.text  # the filter is kept in the form

    form_page = console.get(f"/console/deliveries/{shown[0]}", headers=OPERATOR)
    # One token for every form of the page (replay, resolve).
    form_token, *_ = re.findall(r'name="formToken" value="([0-9a-f]+)"', form_page.text)
    replayed = console.post(
        f"/console/deliveries/{shown[0]}/replay",
        data={"formToken": form_token},
        headers={**OPERATOR, "Origin": str(console.base_url).rstrip("/")},
    )
    assert replayed.status_code == 200, replayed.text
    [banner] = re.findall(
        r'<p class="([a-z]+)" role="[a-z]+" data-field="replay-result">', replayed.text
    )
    assert banner == "problem"
    assert "Replayed: unreadable" in replayed.text


def test_the_queue_lists_what_waits_and_a_resolution_takes_a_dead_letter_out_of_it(
    console: httpx.Client,
) -> None:
    deliver(console, "INV-200")
    dead_letter = b'{"notificationId": "n-queued", "payloads": [{"data": {}}]}'
    answer = console.post(
        "/webhooks/cybersource", content=dead_letter, headers=signed_headers(dead_letter)
    )
    assert answer.status_code == 422
    queue = console.get("/console/deliveries", params={"waiting": "true"}, headers=OPERATOR)
    [waiting] = re.findall(r'data-delivery-id="([0-9]+)"', queue.text)

    page = console.get(f"/console/deliveries/{waiting}", headers=OPERATOR)
    form_token, *_ = re.findall(r'name="formToken" value="([0-9a-f]+)"', page.text)
    resolved = console.post(
        f"/console/deliveries/{waiting}/resolution",
        data={"formToken": form_token, "reason": "entered by hand from the bank statement"},
        headers={**OPERATOR, "Origin": str(console.base_url).rstrip("/")},
    )
    assert resolved.status_code == 200, resolved.text
    [shown] = re.findall(r'data-field="resolution">(.*?)</p>', resolved.text)
    assert '<time datetime="' in shown  # when, in the page's zone, the exact instant beside it
    assert html.unescape(shown).endswith(": entered by hand from the bank statement")
    assert 'action="/console/deliveries/' + waiting + '/resolution"' not in resolved.text
    queue = console.get("/console/deliveries", params={"waiting": "true"}, headers=OPERATOR)
    assert re.findall(r'data-delivery-id="([0-9]+)"', queue.text) == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"agingBucket": "days1To29"}, "agingBucket"),
        ({"asOf": "2026-03-31"}, "asOf"),
        ({"agingBucket": "over90", "asOf": "31/03/2026"}, "asOf"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "€€€"}, "currency"),
        ({"status": "LOST"}, "status"),
        ({"customerName": "x" * 201}, "customerName"),
    ],
)
def test_an_invoice_list_filter_that_cannot_be_read_is_a_400_naming_it(
    console: httpx.Client, query: dict[str, str], named: str
) -> None:
    answer = console.get("/console/invoices", params=query, headers=OPERATOR)
    assert answer.status_code == 400, answer.text
    assert f"{named}:" in html.unescape(answer.text)


def test_an_aging_bucket_lists_the_invoices_in_it_with_their_customer(
    console: httpx.Client,
) -> None:
    deliver(console, "INV-300")
    page = console.get(
        "/console/invoices",
        params={"agingBucket": "current", "asOf": "2020-01-01", "currency": "usd"},
        headers=OPERATOR,
    )
    assert page.status_code == 200, page.text
    assert 'data-field="aging-bucket"' in page.text
    assert "No invoice matches." in page.text  # nothing was owed in 2020


def test_a_customer_statement_owes_what_v1_lists_for_them_and_exports_the_same_as_csv(
    console: httpx.Client,
) -> None:
    for number, balance in (("INV-401", "102.00"), ("INV-402", "17.25")):
        body = encode(invoice_notification(number, notification_id=f"n-{number}", balance=balance))
        assert console.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    listed = console.get(
        "/v1/invoices",
        params={"customerEmail": "tanya@example.com", "currency": "USD", "minPosition": 2},
        headers=OPERATOR,
    ).json()["items"]
    owed = sum(Decimal(item["balanceAmount"]) for item in listed)
    assert owed == Decimal("119.25")
    query = {"customerEmail": "tanya@example.com", "currency": "usd", "asOf": "2023-06-30"}

    page = console.get("/console/statements", params=query, headers=OPERATOR)
    assert page.status_code == 200, page.text
    [shown] = re.findall(r'data-figure="owed" data-value="([^"]+)"', page.text)
    assert Decimal(shown) == owed
    assert "Tanya Lee" in page.text

    exported = console.get("/console/statements.csv", params=query, headers=OPERATOR)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(row["invoice"] for row in rows if row["line"] == "open_invoice") == [
        "INV-401", "INV-402",
    ]  # fmt: skip
    [total] = [row for row in rows if row["line"] == "owed"]
    assert Decimal(total["amount"]) == owed
    assert {row["days_overdue"] for row in rows if row["line"] == "open_invoice"} == {"36"}

    unnamed = console.get("/console/statements.csv", params={"currency": "USD"}, headers=OPERATOR)
    assert unnamed.status_code == 400
    no_currency = console.get(
        "/console/statements", params={"customerEmail": "tanya@example.com"}, headers=OPERATOR
    )
    assert no_currency.status_code == 400 and "currency:" in html.unescape(no_currency.text)


def test_reconcile_now_asks_cybersource_for_the_invoice_and_shows_what_it_appended(
    database_url: str, sandbox_url: str
) -> None:
    new_invoice(sandbox_url, "REC-1", "80.00", customerName="Tanya Lee")
    drive(sandbox_url, "/invoices/REC-1/send")
    environment = {
        name.removeprefix("LEDGER_").lower(): value
        for name, value in cybersource_environment(sandbox_url).items()
    }
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING,
        api_tokens=f"operator:{TOKEN}", **environment,
    )  # fmt: skip
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as console,
    ):
        page = console.get(
            "/console/invoices",
            params={"invoiceNumber": "REC-1", "organizationId": MERCHANT.merchant_id},
            headers=OPERATOR,
        )
        assert page.status_code == 200
        form_token, *_ = re.findall(r'name="formToken" value="([0-9a-f]+)"', page.text)
        answer = console.post(
            "/console/invoices/reconcile",
            data={"formToken": form_token, "invoiceNumber": "REC-1",
                  "organizationId": MERCHANT.merchant_id},
            headers={**OPERATOR, "Origin": str(console.base_url).rstrip("/")},
            follow_redirects=True,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        [notice] = re.findall(r'data-field="reconcile-result">([^<]+)<', answer.text)
        # The serving reconciler's own first sweep may have found it first: then nothing is new.
        assert notice.startswith("Reconciled: ")
        trail = console.get("/v1/invoices/REC-1/events", headers=OPERATOR).json()["items"]
        assert {event["source"] for event in trail} == {"reconciler"}


def test_reconcile_now_without_credentials_says_so_and_asks_nobody(
    console: httpx.Client,
) -> None:
    page = console.get("/console/invoices", params={"invoiceNumber": "X-1"}, headers=OPERATOR)
    form_token, *_ = re.findall(r'name="formToken" value="([0-9a-f]+)"', page.text)
    answer = console.post(
        "/console/invoices/reconcile",
        data={"formToken": form_token, "invoiceNumber": "X-1"},
        headers={**OPERATOR, "Origin": str(console.base_url).rstrip("/")},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert "no Cybersource credentials are configured" in answer.text


def test_a_conflicts_page_marks_the_fields_that_differ_between_its_versions(
    console: httpx.Client,
) -> None:
    for balance in ("100.00", "80.00"):
        body = encode(invoice_notification("INV-500", notification_id="n-500", balance=balance))
        assert console.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    [conflict] = console.get(
        "/v1/deliveries", params={"outcome": "conflict"}, headers=OPERATOR
    ).json()["items"]
    page = console.get(f"/console/deliveries/{conflict['deliveryId']}", headers=OPERATOR).text
    differing = set(re.findall(r'<tr class="differs" data-field-name="([^"]+)">', page))
    same = set(re.findall(r'<tr class="same" data-field-name="([^"]+)">', page))
    assert {"balanceAmount", "stated.balanceAmount"} & differing
    assert "invoiceNumber" not in differing
    assert same  # the rest is shown too, unmarked
