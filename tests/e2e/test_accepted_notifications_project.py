"""Any notification the receiver accepts projects without error and can be read back.

Hypothesis builds signed deliveries with extreme but valid values: the largest amounts the
money parser takes (13 integer digits, 6 decimals) as strings or JSON numbers, every currency
exponent, dates at the ends of the calendar, identifiers of the longest length stored, "/" and
non-ASCII in invoice numbers, every event type, many items up to the per-delivery bound, both
signed forms. Each is posted in-process, the projector catches up, and /v1 answers for every
invoice. On both engines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.cybersource.webhook_signature import SignedContent, signed_message
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE
from service.projections.projector import InvoiceProjector
from service.settings import load_settings
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, signed_headers

WEBHOOK_PATH = "/webhooks/cybersource"
EXAMPLES = 50
ITEMS_MAX = 40  # the delivery bound the app is given; a few examples reach it
IDENTIFIER_LENGTH_MAX = 200
AMOUNT_PATTERN = re.compile(r"^\d+(\.\d+)?$")  # the OpenAPI document's amount pattern
NUMBER_MARK = "\u2063number:"  # marks an amount to be written as a bare JSON number

CURRENCIES = ["USD", "JPY", "KWD", "CLF", "EUR", "ISK", "BHD", "UYW"]  # exponents 0, 2, 3, 4


def _amount_with(places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, 10 ** (13 + places) - 1).map(lambda units: Decimal(units).scaleb(-places))


amounts = st.one_of(
    st.sampled_from(["9999999999999.999999", "9999999999999", "0", "0.000001", "0.00"]).map(
        Decimal
    ),
    st.integers(0, 6).flatmap(_amount_with),
)
written_amounts = st.one_of(
    st.none(),
    amounts.map(lambda amount: format(amount, "f")),
    amounts.map(lambda amount: NUMBER_MARK + format(amount, "f")),
)
# Text the ledger stores: no NUL, no lone surrogate, no surrounding blanks (those are trimmed).
identifier_characters = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
identifiers = st.one_of(
    st.text(identifier_characters, min_size=1, max_size=IDENTIFIER_LENGTH_MAX),
    st.sampled_from(["2026/0042", "a/b/events", "%2F", "..", ".", "請求書-1", "x" * 200]),
)
instants = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.000001-00:30",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59+14:00",
            "2024-02-29T12:00:00Z",
            "2023-05-25T17:49:40.309-07:00",
        ]
    ),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(lambda moment: moment.isoformat()),
)
due_dates = st.one_of(
    st.none(), st.sampled_from([date.min, date.max, date(2024, 2, 29)]), st.dates()
).map(lambda day: day and day.isoformat())


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPE_BY_NOTIFICATION_TYPE)))
    organization = draw(identifiers)
    currency = draw(st.sampled_from(CURRENCIES))
    invoices = draw(st.one_of(st.integers(1, 3), st.just(ITEMS_MAX)))
    items = []
    for _ in range(invoices):
        data = {
            "invoiceNumber": draw(identifiers),
            "balanceAmount": draw(written_amounts),
            "totalAmount": draw(written_amounts),
            "currency": currency,
            "dueDate": draw(due_dates),
            "payerName": draw(st.none() | identifiers),
            "emailTo": draw(st.none() | identifiers),
            "eventType": event_type,
            "organizationID": organization,
        }
        if event_type.endswith(("paid", "partial-payment")):
            data["transactionId"] = draw(st.none() | identifiers)
            data["paymentAmount"] = draw(written_amounts)
        items.append({"data": {name: value for name, value in data.items() if value is not None}})
    return {
        "notificationId": draw(identifiers),
        "retryNumber": 0,
        "eventType": event_type,
        "eventDate": draw(instants),
        "webhookId": draw(identifiers),
        "payloads": items,
    }


def _encoded(notification: dict[str, Any]) -> bytes:
    text = json.dumps(notification, ensure_ascii=False)
    # Amounts marked as numbers lose their quotes: exact JSON numbers, as Cybersource may send.
    return re.sub(f'"{NUMBER_MARK}([0-9.]+)"', r"\1", text).encode()


def _segment(text: str) -> str:
    """A path segment naming ``text`` exactly: dot segments would be removed by any client."""
    return quote(text, safe="").replace(".", "%2E")


def test_every_notification_the_receiver_accepts_projects_and_is_answered_by_v1(
    database_url: str,
) -> None:
    app = create_app(
        load_settings(
            database_url=database_url,
            webhook_keys=WEBHOOK_KEYS_SETTING,
            webhook_items_max=ITEMS_MAX,
            projector_enabled=False,
        )
    )
    ledger = app.state.ledger
    projector = InvoiceProjector(ledger.event_store, ledger.read_models, owner="property-test")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    client = httpx.AsyncClient(transport=transport, base_url="http://localhost")
    loop = asyncio.new_event_loop()
    unique = itertools.count()

    async def deliver_project_and_read(notification: dict[str, Any], form: SignedContent) -> None:
        # A fresh notification id and numbers, so that no example meets an earlier one's facts.
        example = next(unique)
        notification["notificationId"] = f"{example}-{notification['notificationId']}"[:200]
        for item in notification["payloads"]:
            number = item["data"]["invoiceNumber"]
            item["data"]["invoiceNumber"] = f"{example}-{number}"[:IDENTIFIER_LENGTH_MAX]
        body = _encoded(notification)
        if signed_message(0, body, form) is None:
            form = SignedContent.RAW
        answer = await client.post(
            WEBHOOK_PATH, content=body, headers=signed_headers(body, signed_content=form)
        )
        # Every value is valid, so every notification is a new fact.
        assert (answer.status_code, answer.json()) == (200, {"status": "accepted"}), answer.text

        await projector.catch_up()
        assert projector.health.error is None
        assert projector.health.position == await ledger.event_store.highest_position()

        organization = notification["payloads"][0]["data"]["organizationID"]
        event_date = notification["eventDate"]
        for item in notification["payloads"]:
            await _read_invoice(item["data"]["invoiceNumber"], organization, event_date)
        await _read_reports(notification["payloads"][0]["data"], organization, event_date)

    async def _read_invoice(number: str, organization: str, event_date: str) -> None:
        path = f"/v1/invoices/{_segment(number)}"
        named = {"organizationId": organization}
        for url, params in [
            (path, named),
            (path, {**named, "asOf": event_date}),
            (f"{path}/events", named),
        ]:
            response = await client.get(url, params=params)
            assert response.status_code == 200, (url, params, response.text)
            document = response.json()
            assert document["organizationId"] == organization
            if "invoiceNumber" in document:
                assert document["invoiceNumber"] == number
                for field in ("totalAmount", "balanceAmount", "paidAmount"):
                    value = document[field]
                    assert value is None or AMOUNT_PATTERN.fullmatch(value), (field, value)

    async def _read_reports(data: dict[str, Any], organization: str, event_date: str) -> None:
        named = {"organizationId": organization}
        day = event_date[:10]
        for url, params in [
            ("/v1/reports/outstanding", {**named, "asOf": event_date}),
            ("/v1/reports/aging", {**named, "asOf": data.get("dueDate") or day}),
            ("/v1/reports/collections", {**named, "from": day, "to": day}),
            ("/v1/reports/status", named),
        ]:
            response = await client.get(url, params=params)
            assert response.status_code == 200, (url, params, response.text)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(notifications(), st.sampled_from([SignedContent.RAW, SignedContent.PAYLOAD]))
    def accepted_notifications_project(notification: dict[str, Any], form: SignedContent) -> None:
        loop.run_until_complete(deliver_project_and_read(notification, form))

    try:
        accepted_notifications_project()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(ledger.engine.dispose())
        loop.close()
