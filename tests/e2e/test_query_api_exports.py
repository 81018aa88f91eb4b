"""CSV exports of every list and report, over a real socket, on both engines: the same rows
and values as the JSON answer, RFC 4180, streamed page by page."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.csv_export import csv_rows, flattened, insert_invoices
from tests.support.query_api import (
    AUTH,
    TOKEN,
    TWO_ORGANIZATIONS,
    deliver_all,
    get,
    notification,
    organization_notification,
)
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


SEED = [
    *TWO_ORGANIZATIONS,
    # A comma, a quote and a line break in a customer's name; an unknown balance; a
    # currency with three decimals; an invoice number with a slash.
    organization_notification("org-a", "send", "INV,\"2\"", "12.50", "2026-03-03T10:00:00Z",
                              payerName='Lee, "Tanya"\nAccounts'),
    organization_notification("org-a", "send", "2026/7", None, "2026-03-04T10:00:00Z",
                              dueDate="2025-12-01", totalAmount=None),
    notification("send", "KWD-1", "1.234", "2026-03-05T10:00:00Z", currency="KWD",
                 totalAmount="1.234", dueDate="2026-01-20"),
    notification("partial-payment", "KWD-1", "0.234", "2026-03-06T23:30:00Z", currency="KWD",
                 totalAmount="1.234", dueDate="2026-01-20"),
]  # fmt: skip

REPORT_PATHS: list[tuple[str, dict[str, str]]] = [
    ("/v1/invoices", {"limit": "2"}),
    ("/v1/invoices", {"organizationId": "org-a", "status": "SENT"}),
    ("/v1/invoices", {"agingBucket": "over90", "asOf": "2026-04-30"}),
    ("/v1/invoices/1001/events", {"organizationId": "org-a"}),
    ("/v1/reports/outstanding", {}),
    ("/v1/reports/outstanding", {"asOf": "2026-03-04T00:00:00Z"}),
    ("/v1/reports/aging", {"asOf": "2026-03-31"}),
    ("/v1/reports/aging", {"asOf": "2026-03-31", "groupBy": "customer"}),
    ("/v1/reports/collections", {"from": "2026-03-01", "to": "2026-03-31", "interval": "week"}),
    ("/v1/reports/collections", {"from": "2026-03-01", "to": "2026-03-31",
                                 "timeZone": "Asia/Tokyo"}),
    ("/v1/reports/status", {}),
]  # fmt: skip


def _all_json_items(api: httpx.Client, path: str, params: dict[str, str]) -> list[Any]:
    items, cursor = [], None
    while True:
        page = get(api, path, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        if not (cursor := page.get("nextCursor")):
            return items


@pytest.mark.parametrize(("path", "params"), REPORT_PATHS)
def test_every_list_and_report_answers_the_same_rows_as_csv_as_in_json(
    api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    deliver_all(api, SEED)
    expected = [flattened(item) for item in _all_json_items(api, path, params)]
    assert expected, "the seeded ledger gives every answer rows"
    by_parameter = api.get(path, params={**params, "format": "csv"}, headers=AUTH)
    by_accept = api.get(path, params=params, headers={**AUTH, "Accept": "text/csv"})
    for response in (by_parameter, by_accept):
        header, rows = csv_rows(response)
        assert header == list(expected[0]), "the header names the JSON fields, in order"
        assert rows == expected
    assert by_parameter.text == by_accept.text
    assert by_parameter.headers["X-Ledger-Position"] == str(len(SEED))


def test_a_quote_a_comma_and_a_line_break_are_quoted_as_rfc_4180_says(
    api: httpx.Client,
) -> None:
    deliver_all(api, SEED)
    answer = api.get("/v1/invoices", params={"format": "csv"}, headers=AUTH)
    assert '"INV,""2"""' in answer.text
    assert '"Lee, ""Tanya""\nAccounts"' in answer.text
    [quoted] = [row for row in csv_rows(answer)[1] if row["invoiceNumber"] == 'INV,"2"']
    assert quoted["customer.name"] == 'Lee, "Tanya"\nAccounts'
    [unknown] = [row for row in csv_rows(answer)[1] if row["invoiceNumber"] == "2026/7"]
    assert (unknown["balanceAmount"], unknown["paidAmount"]) == ("", "")
    [kwd] = [row for row in csv_rows(answer)[1] if row["invoiceNumber"] == "KWD-1"]
    assert (kwd["totalAmount"], kwd["balanceAmount"], kwd["paidAmount"]) == (
        "1.234", "0.234", "1.000",
    )  # fmt: skip


@pytest.mark.parametrize("formula", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                     "\t=cmd", "\r\n=1", "=1\t"])  # fmt: skip
def test_a_customer_name_a_spreadsheet_would_run_is_neutralised_in_csv_never_in_json(
    api: httpx.Client, formula: str
) -> None:
    deliver_all(api, [notification("send", "INV-F", "10.00", "2026-03-03T10:00:00Z",
                                   payerName=formula, totalAmount="10.00")])  # fmt: skip
    [row] = csv_rows(api.get("/v1/invoices", params={"format": "csv"}, headers=AUTH))[1]
    [item] = get(api, "/v1/invoices")["items"]
    name = item["customer"]["name"]  # exact; a leading tab or CR is trimmed on receipt
    assert name == formula.strip()
    assert row["customer.name"] == "'" + name
    assert (row["totalAmount"], row["balanceAmount"]) == ("10.00", "10.00")  # numbers untouched


def test_an_aging_export_per_currency_has_no_empty_customer_columns(api: httpx.Client) -> None:
    deliver_all(api, SEED)
    answer = api.get("/v1/reports/aging", params={"asOf": "2026-03-31"},
                     headers={**AUTH, "Accept": "text/csv"})  # fmt: skip
    header, _ = csv_rows(answer)
    assert header[0] == "currency" and "customerName" not in header
    assert answer.headers["content-disposition"] == 'attachment; filename="aging-2026-03-31.csv"'


@pytest.mark.parametrize(
    ("params", "headers", "status", "named"),
    [
        ({"format": "xml"}, {}, 400, "format"),
        ({}, {"Accept": "application/xml"}, 406, "text/csv"),
        ({}, {"Accept": "text/csv;q=0, application/json;q=0"}, 406, "application/json"),
    ],
)
def test_an_unknown_format_is_refused_naming_what_is_offered(
    api: httpx.Client, params: dict[str, str], headers: dict[str, str], status: int, named: str
) -> None:
    answer = api.get("/v1/reports/status", params=params, headers={**AUTH, **headers})
    assert answer.status_code == status
    assert named in answer.json()["detail"]


def test_json_is_preferred_unless_accept_prefers_csv(api: httpx.Client) -> None:
    for accept, media_type in [
        ("*/*", "application/json"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("text/csv, application/json;q=0.9", "text/csv"),
        ("text/*", "text/csv"),
    ]:
        answer = api.get("/v1/reports/status", headers={**AUTH, "Accept": accept})
        assert answer.headers["content-type"].startswith(media_type), accept
    only_csv = api.get("/v1/invoices/X", headers={**AUTH, "Accept": "text/csv"})
    assert only_csv.status_code == 406, "one invoice is a document, not a list"


EXPORTED_INVOICES = 40_000


def test_a_large_export_streams_every_page_without_holding_the_whole_answer(
    api: httpx.Client, database_url: str
) -> None:
    asyncio.run(insert_invoices(database_url, EXPORTED_INVOICES))
    received_bytes, lines, chunks = 0, 0, 0
    tracemalloc.start()
    try:
        with api.stream("GET", "/v1/invoices", params={"format": "csv", "limit": "200"},
                        headers=AUTH) as answer:  # fmt: skip
            assert answer.status_code == 200
            assert "content-length" not in answer.headers, "streamed, not built then sent"
            for chunk in answer.iter_bytes():
                received_bytes += len(chunk)
                lines += chunk.count(b"\r\n")
                chunks += 1
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == EXPORTED_INVOICES + 1, "every page, and the header"
    assert chunks > EXPORTED_INVOICES // 200 // 4, "sent in pieces, not in one"
    # Server and client share this process: an answer built whole would have held at least
    # its own size at once; streamed, what both held at once stayed well below it.
    assert peak_bytes < received_bytes / 2, (peak_bytes, received_bytes)
