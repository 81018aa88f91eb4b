"""Generated deliveries with valid signatures never get a 5xx, and whatever is accepted can
be read back by ``read_notification``. In-process, on both databases."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.cybersource.envelope import DeliveryHeaders, parse_body
from service.cybersource.webhook_signature import SignedContent, signed_message
from service.ingest.notification import read_notification
from service.settings import load_settings
from tests.support.asgi import post_in_process
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, invoice_notification, signed_headers

WEBHOOK_PATH = "/webhooks/cybersource"
EXAMPLES = 2000

awkward_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "²", "١٢", "\uff11", "12.00", "-1", "1e3", "NaN", "9" * 40]
    ),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(Decimal),
    awkward_text,
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(awkward_text, children, max_size=3)
    ),
    max_leaves=8,
)
event_dates = st.one_of(
    st.sampled_from(
        [
            "2023-05-25T17:49:40.309-07:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2030-01-01T00:00:00Z",
            "2023-02-30",
        ]
    ),
    awkward_text,
)
data_fields = st.sampled_from(
    [
        "invoiceNumber",
        "balanceAmount",
        "invoiceBalance",
        "totalAmount",
        "currency",
        "dueDate",
        "payerName",
        "emailTo",
        "eventType",
        "organizationID",
        "transactionId",
        "paymentAmount",
    ]
)
envelope_fields = st.sampled_from(
    ["notificationId", "eventType", "eventDate", "webhookId", "organizationId", "retryNumber"]
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, Any], SignedContent, dict[str, str]]:
    notification = invoice_notification(
        draw(st.sampled_from(["INV-F1", "INV-F2", "INV-F3"])),
        draw(
            st.sampled_from(
                ["invoicing.customer.invoice.send", "invoicing.customer.invoice.paid", "other"]
            )
        ),
        notification_id=draw(st.sampled_from(["f-1", "f-2", "f-3"])),
        event_date=draw(event_dates),
    )
    data = notification["payloads"][0]["data"]
    for name, value in draw(st.lists(st.tuples(data_fields, json_value), max_size=4)):
        data[name] = value
    for name, value in draw(st.lists(st.tuples(envelope_fields, json_value), max_size=3)):
        notification[name] = value
    if draw(st.booleans()):
        notification["payload"] = notification.pop("payloads")[0]
    headers = draw(
        st.dictionaries(
            st.sampled_from(["V-C-Retry-Count", "V-C-Event-Type", "V-C-Webhook-Id"]),
            st.sampled_from(["0", "²", "\u00b9", "invoicing.customer.invoice.paid", "x" * 300]),
            max_size=3,
        )
    )
    return notification, draw(st.sampled_from([SignedContent.RAW, SignedContent.PAYLOAD])), headers


def test_generated_signed_deliveries_never_get_a_server_error(database_url: str) -> None:
    app = create_app(load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING))
    loop = asyncio.new_event_loop()
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(deliveries())
    def deliver(delivery: tuple[dict[str, Any], SignedContent, dict[str, str]]) -> None:
        notification, form, extra_headers = delivery
        body = json.dumps(notification, default=float).encode()  # Decimals as JSON numbers
        if signed_message(0, body, form) is None:
            form = SignedContent.RAW
        headers = {**signed_headers(body, signed_content=form, event_type=None), **extra_headers}
        status, answer = loop.run_until_complete(post_in_process(app, WEBHOOK_PATH, body, headers))
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, answer
        if status == 200 and answer["status"] in ("accepted", "duplicate", "conflict"):
            # Whatever the ledger acknowledged as a fact, it can read again.
            read_notification(parse_body(body), DeliveryHeaders.from_mapping(headers))

    try:
        deliver()
    finally:
        loop.run_until_complete(app.state.ledger.engine.dispose())
        loop.close()
    assert statuses.get(200, 0) > 0 and statuses.get(422, 0) > 0, statuses
