"""Accounting exports over a real socket, on both engines: the payments journal holds what the
collections report counts, each payment once; a correction after an export is a reversing
line and a new one; files download again byte for byte and parse back in the layouts Xero and
QuickBooks Online import; an erased payer is never shown in clear; only operators create."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from service.bootstrap import command_ledger
from service.settings import load_settings
from service.store.personal_data.erasure import erase_payer
from tests.support.cli import invoice_ledger
from tests.support.delivery_log import OPERATOR, READ, ledger, post_delivery
from tests.support.personal_data import MASTER_KEY
from tests.support.webhooks import encode, invoice_notification

MARCH = {"kind": "payments", "from": "2026-03-01", "to": "2026-03-31"}
PARTIAL = "invoicing.customer.invoice.partial-payment"
PROJECTION_WAIT_SECONDS = 20.0


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    with ledger(database_url, personal_data_key=MASTER_KEY) as client:
        yield client


def notice(
    number: str, notification_id: str, kind: str, balance: str, day: int, **data: Any
) -> Any:
    stated = {"totalAmount": "100.00"} if kind.endswith(".send") else {}
    return invoice_notification(
        number, kind, notification_id=notification_id, balance=balance,
        event_date=f"2026-03-{day:02d}T10:00:00.000Z", **stated, **data,
    )  # fmt: skip


def deliver(api: httpx.Client, *documents: Any) -> int:
    """Posts the notifications and waits until the read model reflects them; the position."""
    for document in documents:
        assert post_delivery(api, encode(document)).status_code == 200
    position = len(api.get("/v1/deliveries", headers=READ).json()["items"])
    answer = api.get("/v1/reports/status", params={"minPosition": position}, headers=READ)
    assert answer.status_code == 200, answer.text
    return position


def create(api: httpx.Client, **wanted: str) -> dict[str, Any]:
    answer = api.post("/v1/exports", json={**MARCH, **wanted}, headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def lines(api: httpx.Client, export_id: int) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/exports/{export_id}", headers=READ)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["lines"])


def download(api: httpx.Client, export_id: int, file_format: str, **params: str) -> bytes:
    answer = api.get(
        f"/v1/exports/{export_id}", params={"format": file_format, **params}, headers=READ
    )
    assert answer.status_code == 200, answer.text
    return answer.content


def two_invoices_paid_in_march(api: httpx.Client) -> None:
    send = "invoicing.customer.invoice.send"
    deliver(
        api,
        notice("INV-1", "1-send", send, "100.00", 2),
        notice("INV-1", "1-p1", PARTIAL, "70.00", 5),
        notice("INV-1", "1-p2", PARTIAL, "40.00", 9),
        notice("INV-2", "2-send", send, "100.00", 3, payerName="=HYPERLINK(\"x\")",
               emailTo="bob@example.org"),
        notice("INV-2", "2-paid", "invoicing.customer.invoice.paid", "0.00", 20,
               payerName="=HYPERLINK(\"x\")", emailTo="bob@example.org"),
        notice("INV-3", "3-send", send, "100.00", 4, currency="EUR"),
        notice("INV-3", "3-p1", PARTIAL, "75.00", 31, currency="EUR"),
        notice("INV-4", "4-send", send, "100.00", 4),
    )  # fmt: skip


def test_the_payments_journal_holds_exactly_the_collections_the_api_reports_for_the_period(
    api: httpx.Client,
) -> None:
    two_invoices_paid_in_march(api)
    export = create(api)
    journal = lines(api, export["id"])
    reported = api.get(
        "/v1/reports/collections",
        params={"from": "2026-03-01", "to": "2026-03-31", "interval": "month"},
        headers=READ,
    ).json()["items"]
    totals: dict[str, Decimal] = {}
    for line in journal:
        totals[line["currency"]] = totals.get(line["currency"], Decimal(0)) + Decimal(
            line["amount"]
        )
    assert totals == {row["currency"]: Decimal(row["amount"]) for row in reported}
    assert [(line["invoiceNumber"], line["date"], line["amount"]) for line in journal] == [
        ("INV-1", "2026-03-05", "30.00"),
        ("INV-1", "2026-03-09", "30.00"),
        ("INV-2", "2026-03-20", "100.00"),
        ("INV-3", "2026-03-31", "25.00"),
    ]
    assert {line["kind"] for line in journal} == {"payment"}
    assert all(line["source"] == "webhook" and line["position"] > 0 for line in journal)
    assert export["lineCount"] == 4 and len(export["contentDigest"]) == 64


def test_a_second_export_of_the_same_period_is_empty(api: httpx.Client) -> None:
    two_invoices_paid_in_march(api)
    first = create(api)
    second = create(api)
    assert (first["lineCount"], second["lineCount"]) == (4, 0)
    assert lines(api, second["id"]) == []
    listed = api.get("/v1/exports", headers=READ).json()["items"]
    assert [item["id"] for item in listed] == [second["id"], first["id"]]


def test_an_export_downloads_again_byte_for_byte_in_every_format(api: httpx.Client) -> None:
    two_invoices_paid_in_march(api)
    export = create(api)
    for file_format, params in (
        ("json", {}), ("csv", {}), ("xero", {"currency": "USD"}),
        ("quickbooks", {"currency": "USD"}),
    ):  # fmt: skip
        first = download(api, export["id"], file_format, **params)
        deliver(api, notice("INV-4", f"4-p-{file_format}", PARTIAL, "90.00", 12))
        assert download(api, export["id"], file_format, **params) == first, file_format


def test_a_correction_after_an_export_is_a_reversing_line_and_a_new_line_in_the_next_export(
    api: httpx.Client,
) -> None:
    send = "invoicing.customer.invoice.send"
    second = notice("INV-R", "r-p2", PARTIAL, "40.00", 12)
    deliver(
        api,
        notice("INV-R", "r-send", send, "100.00", 10),
        notice("INV-R", "r-p1", PARTIAL, "70.00", 11),
        second,
    )
    before = lines(api, create(api)["id"])
    assert [(line["sequence"], line["amount"]) for line in before] == [(1, "30.00"), (2, "30.00")]
    second["payloads"][0]["data"]["balanceAmount"] = "50.00"
    second["payloads"][0]["data"]["invoiceBalance"] = "50.00"
    assert post_delivery(api, encode(second)).json()["status"] == "conflict"
    conflict = api.get("/v1/deliveries", params={"outcome": "conflict"}, headers=READ)
    delivery_id = conflict.json()["items"][0]["deliveryId"]
    corrected = api.post(
        f"/v1/deliveries/{delivery_id}/corrections", json={"reason": "support"}, headers=OPERATOR
    )
    [position] = corrected.json()["positions"]
    api.get("/v1/reports/status", params={"minPosition": position}, headers=READ)

    after = lines(api, create(api)["id"])
    assert [
        (line["kind"], line["sequence"], line["date"], line["amount"], line["source"])
        for line in after
    ] == [
        ("reversal", 2, "2026-03-12", "-30.00", "operator"),
        ("payment", 2, "2026-03-12", "20.00", "operator"),
    ]
    assert all(line["position"] == position for line in after)
    assert lines(api, create(api)["id"]) == []
    assert lines(api, 1) == before  # the exported lines were never edited


def test_xero_and_quickbooks_files_parse_back_with_their_documented_columns(
    api: httpx.Client,
) -> None:
    two_invoices_paid_in_march(api)
    export = create(api)
    several = api.get(f"/v1/exports/{export['id']}", params={"format": "xero"}, headers=READ)
    assert several.status_code == 400 and "currency" in several.json()["detail"]

    xero = list(
        csv.DictReader(io.StringIO(download(api, export["id"], "xero", currency="USD").decode()))
    )
    assert list(xero[0]) == ["Date", "Amount", "Payee", "Description", "Reference"]
    assert [(row["Date"], row["Amount"], row["Reference"]) for row in xero] == [
        ("05/03/2026", "30.00", "INV-1"), ("09/03/2026", "30.00", "INV-1"),
        ("20/03/2026", "100.00", "INV-2"),
    ]  # fmt: skip
    assert xero[2]["Payee"] == '\'=HYPERLINK("x")'  # shown, never run
    assert xero[0]["Payee"] == "Tanya Lee"

    quickbooks_text = download(api, export["id"], "quickbooks", currency="USD").decode()
    quickbooks = list(csv.DictReader(io.StringIO(quickbooks_text)))
    assert list(quickbooks[0]) == ["Date", "Description", "Amount"]
    assert [(row["Date"], row["Amount"]) for row in quickbooks] == [
        ("03/05/2026", "30.00"), ("03/09/2026", "30.00"), ("03/20/2026", "100.00"),
    ]  # fmt: skip
    assert all(not row["Description"].startswith("=") for row in quickbooks)

    generic = list(csv.DictReader(io.StringIO(download(api, export["id"], "csv").decode())))
    assert generic[2]["customer.name"] == '\'=HYPERLINK("x")'
    assert [row["amount"] for row in generic] == ["30.00", "30.00", "100.00", "25.00"]


def test_the_open_invoices_export_lists_the_receivables_at_the_period_end(
    api: httpx.Client,
) -> None:
    two_invoices_paid_in_march(api)
    export = create(api, kind="receivables", to="2026-03-31")
    receivables = lines(api, export["id"])
    assert [
        (line["invoiceNumber"], line["currency"], line["amount"], line["dueDate"],
         line["daysOverdue"])
        for line in receivables
    ] == [
        ("INV-1", "USD", "40.00", "2023-05-25", 1041),
        ("INV-3", "EUR", "75.00", "2023-05-25", 1041),
        ("INV-4", "USD", "100.00", "2023-05-25", 1041),
    ]  # fmt: skip
    refused = api.get(
        f"/v1/exports/{export['id']}", params={"format": "xero", "currency": "USD"}, headers=READ
    )
    assert refused.status_code == 400


def test_an_erased_payer_never_appears_in_clear_in_an_export(
    api: httpx.Client, database_url: str
) -> None:
    two_invoices_paid_in_march(api)
    export = create(api)
    asyncio.run(_erase(database_url, "tanya@example.com"))
    _until(lambda: lines(api, export["id"])[0]["customer"]["erased"])
    files = [
        download(api, export["id"], "json"), download(api, export["id"], "csv"),
        download(api, export["id"], "xero", currency="USD"),
        download(api, export["id"], "quickbooks", currency="USD"),
    ]  # fmt: skip
    for content in files:
        assert b"Tanya" not in content and b"tanya@example.com" not in content
    assert lines(api, export["id"])[0]["customer"] == {"name": None, "email": None, "erased": True}
    assert b"erased" in files[2]
    assert b"bob@example.org" in files[1]  # another payer stays


def test_a_read_token_lists_and_downloads_exports_but_cannot_create_one(
    api: httpx.Client,
) -> None:
    refused = api.post("/v1/exports", json=MARCH, headers=READ)
    assert (refused.status_code, refused.json()["error"]) == (403, "insufficient_scope")
    assert api.get("/v1/exports", headers=READ).json()["items"] == []
    export = create(api)
    assert api.get(f"/v1/exports/{export['id']}", headers=READ).status_code == 200
    as_csv = api.get(f"/v1/exports/{export['id']}", headers={**READ, "Accept": "text/csv"})
    assert as_csv.text.startswith("line,kind,date,")
    refused = api.get(f"/v1/exports/{export['id']}", headers={**READ, "Accept": "image/png"})
    assert refused.status_code == 406
    assert api.get("/v1/exports/999", headers=READ).status_code == 404
    backwards = api.post("/v1/exports", json={**MARCH, "to": "2026-02-01"}, headers=OPERATOR)
    assert backwards.status_code == 400


def test_the_command_line_creates_lists_and_downloads_the_same_bytes(
    api: httpx.Client, database_url: str
) -> None:
    two_invoices_paid_in_march(api)
    environment = {"LEDGER_DATABASE_URL": database_url, "LEDGER_PERSONAL_DATA_KEY": MASTER_KEY}
    made = invoice_ledger(
        "exports", "create", "--from", "2026-03-01", "--to", "2026-03-31", "--json",
        environment=environment,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    export_id = json.loads(made.stdout)["id"]
    assert json.loads(made.stdout)["lineCount"] == 4
    again = invoice_ledger(
        "exports", "create", "--from", "2026-03-01", "--to", "2026-03-31", "--json",
        environment=environment,
    )  # fmt: skip
    assert json.loads(again.stdout)["lineCount"] == 0
    listed = invoice_ledger("exports", "list", environment=environment)
    assert listed.stdout.decode().splitlines()[0].startswith("id\tkind\tfrom")
    downloaded = invoice_ledger(
        "exports", "download", str(export_id), "--format", "xero", "--currency", "USD",
        environment=environment,
    )  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.stdout == download(api, export_id, "xero", currency="USD")
    unknown = invoice_ledger("exports", "download", "999", environment=environment)
    assert unknown.returncode == 1


async def _erase(url: str, email: str) -> None:
    settings = load_settings(database_url=url, personal_data_key=MASTER_KEY)
    async with command_ledger(settings) as ledger_:
        await erase_payer(
            ledger_.engine, ledger_.data_keys, ledger_.event_store,
            email=email, name=None, reason="GDPR request", recorded_by="cli:test",
        )  # fmt: skip


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PROJECTION_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the projector did not catch up"
        time.sleep(0.1)


def test_a_period_at_the_ends_of_the_calendar_is_an_export_not_an_error(api: httpx.Client) -> None:
    for day in ("0001-01-01", "9999-12-31"):
        for kind in ("payments", "receivables"):
            made = api.post(
                "/v1/exports", json={"kind": kind, "from": day, "to": day}, headers=OPERATOR
            )
            assert made.status_code == 200, made.text


def test_a_head_request_on_exports_is_answered_as_its_get_is(api: httpx.Client) -> None:
    export = create(api)
    for path in ("/v1/exports", f"/v1/exports/{export['id']}"):
        answer = api.head(path, headers=READ)
        assert answer.status_code == 200, (path, answer.status_code)
        assert answer.headers["content-type"] == api.get(path, headers=READ).headers["content-type"]


def test_the_command_line_refuses_a_currency_or_export_id_the_api_would_refuse(
    database_url: str,
) -> None:
    environment = {"LEDGER_DATABASE_URL": database_url}
    made = invoice_ledger(
        "exports", "create", "--from", "2026-03-01", "--to", "2026-03-31", "--json",
        environment=environment,
    )  # fmt: skip
    export_id = str(json.loads(made.stdout)["id"])
    for arguments in (
        [export_id, "--format", "xero", "--currency", "usd"],
        [export_id, "--currency", "US"],
        [str(2**63)],
    ):
        refused = invoice_ledger("exports", "download", *arguments, environment=environment)
        assert (refused.returncode, refused.stdout) == (2, b""), refused.stderr
        assert b"Traceback" not in refused.stderr
