"""The console shows instants in the time zone a page is asked for (``tz``, UTC unless
asked), to the second, with the exact stored instant beside each; its links keep the zone.
Over a real socket on both engines."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.console_pages import OPERATOR, console_client, deliver, projected


@pytest.fixture
def console(database_url: str) -> Iterator[httpx.Client]:
    with console_client(database_url) as client:
        deliver(client, "TZ-1", balance="100.00", event_date="2023-05-25T22:30:15Z")
        deliver(
            client, "TZ-1", event_type="invoicing.customer.invoice.partial-payment",
            notification_id="n-tz-2", balance="60.00", event_date="2023-05-26T10:00:07Z",
        )  # fmt: skip
        projected(client, 2)
        yield client


def times(page: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', page)


def test_an_invoice_s_instants_are_shown_in_the_zone_asked_for_with_the_exact_instant(
    console: httpx.Client,
) -> None:
    page = console.get(
        "/console/invoices",
        params={"invoiceNumber": "TZ-1", "tz": "Europe/Paris"},
        headers=OPERATOR,
    )
    assert page.status_code == 200, page.text
    shown = times(page.text)
    assert ("2023-05-26T10:00:07Z", "2023-05-26T10:00:07Z", "2023-05-26 12:00:07 CEST") in shown
    assert ("2023-05-25T22:30:15Z", "2023-05-25T22:30:15Z", "2023-05-26 00:30:15 CEST") in shown
    assert "Received (Europe/Paris)" in page.text
    # The console's links and its filter form keep the zone.
    assert 'href="/console/deliveries?tz=Europe%2FParis"' in page.text
    assert '<input type="hidden" name="tz" value="Europe/Paris">' in page.text
    assert 'data-field="tz"' in page.text and 'value="Europe/Paris"' in page.text


def test_without_a_zone_instants_are_in_utc_to_the_second(console: httpx.Client) -> None:
    page = console.get("/console/invoices", params={"invoiceNumber": "TZ-1"}, headers=OPERATOR)
    assert ("2023-05-26T10:00:07Z", "2023-05-26T10:00:07Z", "2023-05-26 10:00:07 UTC") in times(
        page.text
    )
    assert 'href="/console/deliveries"' in page.text  # UTC is not repeated in links
    deliveries = console.get("/console/deliveries", params={"tz": "Asia/Tokyo"}, headers=OPERATOR)
    assert deliveries.status_code == 200
    assert all(text.endswith(" JST") for _, _, text in times(deliveries.text))
    assert len(times(deliveries.text)) == 2


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "CEST+2", "x" * 201])
def test_a_zone_that_is_not_an_iana_name_is_a_400_naming_tz(
    console: httpx.Client, zone: str
) -> None:
    for path in ("/console", "/console/invoices", "/console/deliveries"):
        answer = console.get(path, params={"tz": zone}, headers=OPERATOR)
        assert answer.status_code == 400, (path, answer.text)
        assert "tz:" in html.unescape(answer.text)


def test_the_overview_counts_days_in_the_zone_and_its_bars_keep_it(console: httpx.Client) -> None:
    page = console.get(
        "/console",
        params={
            "tz": "America/New_York",
            "from": "2023-05-01",
            "to": "2023-05-31",
            "interval": "day",
        },
        headers=OPERATOR,
    )
    assert page.status_code == 200, page.text
    assert "(days in America/New_York)" in page.text
    # 10:00:07 UTC on the 26th is 06:00:07 that day in New York: the payment's bar is the 26th.
    bars = dict(re.findall(r'data-key="(2023-05-[0-9]{2})" data-value="([^"]*)"', page.text))
    assert bars == {"2023-05-26": "40.00"}
