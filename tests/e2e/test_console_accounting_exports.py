"""Accounting exports from the console, over a real socket on both engines: the list, a new
export recorded by an operator through the console's own form, and its files downloaded
again, the same bytes as /v1 gives."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.console_pages import (
    OPERATOR,
    READER,
    console_client,
    deliver,
    form_token,
    posted_from_console,
    projected,
)


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    with console_client(database_url) as client:
        deliver(client, "X-1", balance="100.00", event_date="2023-05-02T09:00:00Z")
        deliver(
            client, "X-1", event_type="invoicing.customer.invoice.partial-payment",
            notification_id="n-x-1-paid", balance="60.00", event_date="2023-05-03T09:00:00Z",
        )  # fmt: skip
        projected(client, 2)
        yield client


def create(client: httpx.Client, **fields: str) -> httpx.Response:
    page = client.get("/console/exports", headers=OPERATOR)
    return client.post(
        "/console/exports",
        data={"formToken": form_token(page.text), **fields},
        headers=posted_from_console(client),
    )


def test_an_operator_records_an_export_and_downloads_what_v1_gives(console: httpx.Client) -> None:
    empty = console.get("/console/exports", headers=OPERATOR)
    assert empty.status_code == 200 and "No export made yet." in empty.text
    assert 'data-field="new-export"' in empty.text
    answer = create(console, kind="payments", **{"from": "2023-05-01", "to": "2023-05-31"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/console/exports?created=")
    page = console.get(answer.headers["location"], headers=OPERATOR)
    [export_id] = re.findall(r'<tr data-export-id="([0-9]+)">', page.text)
    assert f"Export {export_id} recorded." in page.text
    [line_count] = re.findall(r'<td class="amount">([0-9]+)</td>', page.text)
    assert line_count == "1"

    for file_format in ("csv", "json", "xero", "quickbooks"):
        path = f"/console/exports/{export_id}/download?format={file_format}"
        downloaded = console.get(path, headers=OPERATOR)
        assert downloaded.status_code == 200, downloaded.text
        assert "attachment" in downloaded.headers["content-disposition"]
        from_v1 = console.get(
            f"/v1/exports/{export_id}", params={"format": file_format}, headers=OPERATOR
        )
        assert downloaded.content == from_v1.content
    rows = list(csv.DictReader(io.StringIO(console.get(
        f"/console/exports/{export_id}/download?format=csv", headers=OPERATOR).text)))  # fmt: skip
    assert [(row["invoiceNumber"], row["amount"]) for row in rows] == [("X-1", "40.00")]
    # The same period again holds only what is new: nothing.
    again = create(console, kind="payments", **{"from": "2023-05-01", "to": "2023-05-31"})
    listed = console.get(again.headers["location"], headers=OPERATOR).text
    assert re.findall(r'<td class="amount">([0-9]+)</td>', listed) == ["0", "1"]


def test_recording_an_export_needs_an_operator_and_the_console_s_form(
    console: httpx.Client,
) -> None:
    reader_page = console.get("/console/exports", headers=READER)
    assert reader_page.status_code == 200
    assert 'data-field="new-export"' not in reader_page.text
    operator_page = console.get("/console/exports", headers=OPERATOR)
    period = {"kind": "payments", "from": "2023-05-01", "to": "2023-05-31"}
    origin = posted_from_console(console)["Origin"]
    as_reader = console.post(
        "/console/exports",
        data={"formToken": form_token(operator_page.text), **period},
        headers={**READER, "Origin": origin},
    )
    assert as_reader.status_code == 403
    forged = console.post(
        "/console/exports", data={"formToken": "0" * 64, **period},
        headers=posted_from_console(console),
    )  # fmt: skip
    assert forged.status_code == 403
    elsewhere = console.post(
        "/console/exports", data={"formToken": form_token(operator_page.text), **period},
        headers={**OPERATOR, "Origin": "https://elsewhere.example"},
    )  # fmt: skip
    assert elsewhere.status_code == 403
    assert console.get("/v1/exports", headers=OPERATOR).json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"kind": "refunds", "from": "2023-05-01", "to": "2023-05-31"}, "kind"),
     ({"kind": "payments", "from": "2023-05-31", "to": "2023-05-01"}, "to"),
     ({"kind": "payments", "from": "2023-05-01", "to": "31/05/2023"}, "to"),
     ({"kind": "payments", "from": "2023-05-01"}, "from, to")],
)  # fmt: skip
def test_an_export_that_cannot_be_made_is_a_400_naming_why(
    console: httpx.Client, fields: dict[str, str], named: str
) -> None:
    answer = create(console, **fields)
    assert answer.status_code == 400, answer.text
    assert f"{named}:" in html.unescape(answer.text)


def test_a_download_names_what_it_cannot_give(console: httpx.Client) -> None:
    assert console.get("/console/exports/99/download", headers=OPERATOR).status_code == 404
    create(console, kind="receivables", **{"from": "2023-05-01", "to": "2023-05-31"})
    [export] = console.get("/v1/exports", headers=OPERATOR).json()["items"]
    for query, named in (({"format": "xero"}, "format"), ({"format": "pdf"}, "format"),
                         ({"currency": "DOLLAR"}, "currency")):  # fmt: skip
        answer = console.get(
            f"/console/exports/{export['id']}/download", params=query, headers=READER
        )
        assert answer.status_code == 400 and f"{named}:" in html.unescape(answer.text)
