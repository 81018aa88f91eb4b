"""Provisional amounts over a real socket, on both engines: labelled in the invoice document and
its payments, given apart in every report row, the same in CSV as in JSON, and tagged in the
console. Most read rows here are written as the projector writes them, from states labelled by
hand (every kind of figure at once); the last test goes from signed webhooks through the fold."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.csv_export import csv_rows, flattened
from tests.support.provisional import MOMENT, confirmed, paid_once, project, sent
from tests.support.query_api import AUTH, TOKEN, deliver_all, get, notification
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

ALL_PROVISIONAL = ["totalAmount", "balanceAmount", "paidAmount"]
MARCH = {"from": "2026-03-01", "to": "2026-03-31", "interval": "month"}


async def _project_ledger(database_url: str) -> None:
    engine = create_engine(resolve_database_url(database_url))
    try:
        read_models = SqlReadModelStore(engine)
        p2 = paid_once("P-2", total="30.00", balance="10.00", provisional=True,
                       customer_name="Tanya Lee")  # fmt: skip
        await project(read_models, [
            paid_once("P-1", total="100.00", balance="60.00", provisional=True,
                      customer_name="Tanya Lee"),
            p2,
            paid_once("C-1", total="50.00", balance="20.00", provisional=False),
            sent("E-1", total="12.50", provisional=False, currency="EUR"),
        ])  # fmt: skip
        # Cybersource confirmed P-2 on 3 March: provisional on 1 and 2 March only.
        await project(read_models, [confirmed(p2, MOMENT + timedelta(days=2))])
        await read_models.release_lease("test")
    finally:
        await engine.dispose()


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    asyncio.run(_project_ledger(database_url))
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN,
        projector_enabled=False,
    )  # fmt: skip
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_the_invoice_document_names_its_provisional_amounts_and_payments(
    api: httpx.Client,
) -> None:
    provisional = get(api, "/v1/invoices/P-1")
    assert provisional["provisional"] == ALL_PROVISIONAL
    assert [payment["provisional"] for payment in provisional["payments"]] == [True]
    assert (provisional["totalAmount"], provisional["paidAmount"]) == ("100.00", "40.00")
    for number in ("C-1", "E-1", "P-2"):
        document = get(api, f"/v1/invoices/{number}")
        assert document["provisional"] == [], number
        assert not any(payment["provisional"] for payment in document["payments"]), number
    # Behind an aging bucket an invoice is listed as it stood then: P-2 still provisional.
    # Its payment is shown as it is known now: Cybersource has confirmed it since.
    [p2] = [
        item
        for item in get(api, "/v1/invoices", agingBucket="current", asOf="2026-03-02")["items"]
        if item["invoiceNumber"] == "P-2"
    ]
    assert (p2["provisional"], p2["payments"][0]["provisional"]) == (ALL_PROVISIONAL, False)


def test_every_report_row_gives_its_provisional_part_and_confirmed_money_none(
    api: httpx.Client,
) -> None:
    collections = _by(get(api, "/v1/reports/collections", **MARCH)["items"], "currency")
    # P-1's 40.00 is provisional; P-2's 20.00 and C-1's 30.00 are confirmed.
    assert (collections["USD"]["amount"], collections["USD"]["provisionalAmount"]) == (
        "90.00", "40.00",
    )  # fmt: skip
    outstanding = _by(get(api, "/v1/reports/outstanding")["items"], "currency")
    assert {currency: (row["balanceAmount"], row["provisionalBalanceAmount"])
            for currency, row in outstanding.items()} == {
        "EUR": ("12.50", "0.00"), "USD": ("90.00", "60.00"),
    }  # fmt: skip
    back_then = _by(
        get(api, "/v1/reports/outstanding", asOf="2026-03-02T00:00:00Z")["items"], "currency"
    )
    assert back_then["USD"]["provisionalBalanceAmount"] == "70.00"  # P-2's 10.00 too, then
    aging = _by(get(api, "/v1/reports/aging", asOf="2026-03-15")["items"], "currency")
    assert (aging["USD"]["current"], aging["USD"]["provisionalBalanceAmount"]) == (
        "90.00", "60.00",
    )  # fmt: skip
    assert aging["EUR"]["provisionalBalanceAmount"] == "0.00"
    customers = get(api, "/v1/reports/aging", asOf="2026-03-15", groupBy="customer")["items"]
    assert {(row["customerName"], row["provisionalBalanceAmount"]) for row in customers} == {
        ("Tanya Lee", "60.00"), (None, "0.00"),
    }  # fmt: skip
    status = _by(get(api, "/v1/reports/status")["items"], "currency")
    assert (status["USD"]["provisionalTotalAmount"], status["USD"]["provisionalBalanceAmount"]) == (
        "100.00", "60.00",
    )  # fmt: skip
    assert (status["EUR"]["provisionalTotalAmount"], status["EUR"]["provisionalBalanceAmount"]) == (
        "0.00", "0.00",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/invoices", {}),
        ("/v1/invoices", {"agingBucket": "current", "asOf": "2026-03-02"}),
        ("/v1/reports/outstanding", {}),
        ("/v1/reports/outstanding", {"asOf": "2026-03-02T00:00:00Z"}),
        ("/v1/reports/aging", {"asOf": "2026-03-15"}),
        ("/v1/reports/aging", {"asOf": "2026-03-15", "groupBy": "customer"}),
        ("/v1/reports/collections", MARCH),
        ("/v1/reports/collections", {**MARCH, "timeZone": "Asia/Tokyo"}),
        ("/v1/reports/status", {}),
    ],
)
def test_the_provisional_fields_read_the_same_in_csv_as_in_json(
    api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    expected = [flattened(item) for item in get(api, path, **params)["items"]]
    assert any(
        value not in ("", "0.00") for row in expected for key, value in row.items()
        if key.startswith("provisional")
    ), "the answer has provisional figures to compare"  # fmt: skip
    header, rows = csv_rows(api.get(path, params={**params, "format": "csv"}, headers=AUTH))
    assert header == list(expected[0])
    assert rows == expected


def test_the_console_tags_the_provisional_amounts_of_an_invoice(api: httpx.Client) -> None:
    def page(number: str) -> str:
        answer = api.get("/console/invoices", params={"invoiceNumber": number}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return answer.text

    shown = page("P-1")
    payments = shown.count('data-field="provisional-payment"')  # the payments table's own tag
    assert shown.count('class="badge provisional"') - payments == 3  # total, balance, paid
    assert payments == 1
    assert 'class="badge provisional"' not in page("C-1")
    listed = api.get("/console/invoices", headers=AUTH).text
    assert listed.count('class="badge provisional"') == 2  # P-1's total and balance


@pytest.fixture
def webhook_api(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def test_a_total_and_a_payment_known_from_webhooks_alone_are_provisional_in_json_and_csv(
    webhook_api: httpx.Client,
) -> None:
    deliver_all(webhook_api, [
        # A send stating no total (its balance is the best figure), then a partial payment.
        notification("send", "W-1", "150.00", "2026-03-01T10:00:00Z", totalAmount=None),
        notification("partial-payment", "W-1", "40.00", "2026-03-05T10:00:00Z",
                     totalAmount=None),
        notification("send", "S-1", "100.00", "2026-03-01T10:00:00Z"),  # its total stated
    ])  # fmt: skip
    invoice = get(webhook_api, "/v1/invoices/W-1", minPosition=3)
    assert invoice["provisional"] == ["totalAmount", "paidAmount"]
    assert (invoice["totalAmount"], invoice["paidAmount"]) == ("150.00", "110.00")
    assert [payment["provisional"] for payment in invoice["payments"]] == [True]
    assert get(webhook_api, "/v1/invoices/S-1")["provisional"] == []
    [collected] = get(webhook_api, "/v1/reports/collections", **MARCH)["items"]
    assert (collected["amount"], collected["provisionalAmount"]) == ("110.00", "110.00")
    status = _by(get(webhook_api, "/v1/reports/status")["items"], "status")
    assert (status["PARTIAL"]["provisionalTotalAmount"], status["SENT"]["provisionalTotalAmount"]
            ) == ("150.00", "0.00")  # fmt: skip
    for path, params in [("/v1/invoices", {}), ("/v1/reports/collections", MARCH),
                         ("/v1/reports/status", {})]:  # fmt: skip
        expected = [flattened(item) for item in get(webhook_api, path, **params)["items"]]
        _, rows = csv_rows(webhook_api.get(path, params={**params, "format": "csv"}, headers=AUTH))
        assert rows == expected, path
