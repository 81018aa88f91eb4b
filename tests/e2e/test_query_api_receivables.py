"""Receivables views over a real socket, on both engines: the invoices behind an aging bucket,
aging per customer, days in a time zone, and periods cut by the range."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.domain.reports import AGING_BUCKETS
from service.settings import load_settings
from tests.support.query_api import AUTH, TOKEN, deliver_all, get, organization_notification
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, encode


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def _invoice(
    organization: str,
    number: str,
    due: str | None,
    balance: str | None,
    customer: str,
    currency: str = "USD",
    kind: str = "send",
    when: str = "2026-03-01T10:00:00Z",
) -> bytes:
    extra: dict[str, Any] = {
        "dueDate": due,
        "currency": currency,
        "payerName": customer,
        "emailTo": f"{customer.lower()}@example.com",
    }
    if balance is None:
        extra["totalAmount"] = None
    body = json.loads(organization_notification(organization, kind, number, balance, when, **extra))
    body["notificationId"] += f"-{when}"  # two payments on one invoice are two notifications
    return encode(body)


AS_OF = "2026-06-30"
LEDGER = [
    _invoice("org-a", "A-1", "2026-07-15", "100.00", "Ada"),      # current
    _invoice("org-a", "A-2", "2026-06-10", "20.00", "Ada"),       # days1To30
    _invoice("org-a", "A-3", "2026-05-20", "30.50", "Ada"),       # days31To60
    _invoice("org-a", "A-4", "2026-04-15", "45.00", "Bo"),        # days61To90
    _invoice("org-a", "A-5", "2026-01-01", "70.00", "Bo"),        # over90
    _invoice("org-a", "A-6", None, "9.99", "Bo"),                 # noDueDate
    _invoice("org-a", "A-7", "2026-05-25", None, "Bo"),           # days31To60, unknown
    _invoice("org-b", "A-1", "2026-05-01", "12.00", "Ada"),       # same number, other org
    _invoice("org-b", "B-1", "2026-05-02", "1.500", "Cy", "KWD"),  # days31To60, KWD
    _invoice("org-b", "B-2", "2026-01-02", "8.00", "Cy", when="2026-01-05T10:00:00Z"),
    _invoice("org-b", "B-2", "2026-01-02", "0.00", "Cy", kind="paid",
             when="2026-02-01T10:00:00Z"),                         # paid: in no bucket
]  # fmt: skip


def _all_invoices(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = get(api, "/v1/invoices", limit=2, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        if not (cursor := page["nextCursor"]):
            return items


def test_the_invoices_behind_each_aging_bucket_add_up_to_it(api: httpx.Client) -> None:
    deliver_all(api, LEDGER)
    aging = get(api, "/v1/reports/aging", asOf=AS_OF)
    assert {row["currency"] for row in aging["items"]} == {"USD", "KWD"}
    listed_anywhere = []
    for bucket in AGING_BUCKETS:
        behind = _all_invoices(api, agingBucket=bucket, asOf=AS_OF)
        listed_anywhere += [(i["organizationId"], i["invoiceNumber"]) for i in behind]
        for row in aging["items"]:
            balances = [i["balanceAmount"] for i in behind if i["currency"] == row["currency"]]
            known = sum((Decimal(b) for b in balances if b is not None), Decimal(0))
            if row[bucket] is None:
                assert balances and all(b is None for b in balances), (bucket, row)
            else:
                assert known == Decimal(row[bucket]), (bucket, row["currency"], balances)
    assert sorted(listed_anywhere) == sorted(
        [("org-a", f"A-{n}") for n in range(1, 8)] + [("org-b", "A-1"), ("org-b", "B-1")]
    ), "each open invoice behind exactly one bucket; the paid one behind none"


def test_an_aging_bucket_lists_what_was_open_that_day_as_it_stood_then(
    api: httpx.Client,
) -> None:
    deliver_all(api, LEDGER)
    # On 2026-01-20 B-2 (due 2026-01-02) was open and 18 days late; it was paid 2026-02-01.
    [b2] = _all_invoices(api, agingBucket="days1To30", asOf="2026-01-20")
    assert (b2["organizationId"], b2["invoiceNumber"]) == ("org-b", "B-2")
    assert (b2["status"], b2["balanceAmount"], b2["paidAmount"]) == ("SENT", "8.00", "92.00")
    assert b2["lastEventAt"] == "2026-01-05T10:00:00Z"
    [row] = get(api, "/v1/reports/aging", asOf="2026-01-20")["items"]
    assert row["days1To30"] == b2["balanceAmount"]
    assert get(api, "/v1/invoices/B-2", organizationId="org-b")["status"] == "PAID"
    then = {"agingBucket": "days1To30", "asOf": "2026-01-20"}
    assert _all_invoices(api, **then, status="SENT") == [b2], "filtered as it stood then"
    assert _all_invoices(api, **then, status="PAID") == []
    assert _all_invoices(api, agingBucket="days31To60", asOf="2026-03-05") == []


def test_aging_per_customer_adds_up_to_the_report(api: httpx.Client) -> None:
    deliver_all(api, LEDGER)
    totals = {row["currency"]: row for row in get(api, "/v1/reports/aging", asOf=AS_OF)["items"]}
    grouped = get(api, "/v1/reports/aging", asOf=AS_OF, groupBy="customer")
    keys = [(r["organizationId"], r["customerName"], r["currency"]) for r in grouped["items"]]
    assert keys == [("org-a", "Ada", "USD"), ("org-a", "Bo", "USD"), ("org-b", "Ada", "USD"),
                    ("org-b", "Cy", "KWD")]  # fmt: skip
    assert grouped["items"][0]["customerEmail"] == "ada@example.com"
    for currency, total in totals.items():
        rows = [row for row in grouped["items"] if row["currency"] == currency]
        for bucket in AGING_BUCKETS:
            known = [Decimal(row[bucket]) for row in rows if row[bucket] is not None]
            assert sum(known, Decimal(0)) == Decimal(total[bucket] or "0"), (currency, bucket)
        assert any(row["incomplete"] for row in rows) == total["incomplete"]
    [bo] = [row for row in grouped["items"] if row["customerName"] == "Bo"]
    assert (bo["days31To60"], bo["incomplete"]) == (None, True), "A-7's balance is unknown"
    assert get(api, "/v1/reports/aging", asOf=AS_OF, groupBy="customer",
               organizationId="org-b")["items"][0]["organizationId"] == "org-b"  # fmt: skip


def test_the_invoices_behind_a_customer_row_add_up_to_it(api: httpx.Client) -> None:
    deliver_all(api, LEDGER)
    grouped = get(api, "/v1/reports/aging", asOf=AS_OF, groupBy="customer")["items"]
    for row in grouped:
        customer = {"organizationId": row["organizationId"], "currency": row["currency"],
                    "customerName": row["customerName"] or "",
                    "customerEmail": row["customerEmail"] or ""}  # fmt: skip
        for bucket in AGING_BUCKETS:
            behind = _all_invoices(api, agingBucket=bucket, asOf=AS_OF, **customer)
            known = [Decimal(i["balanceAmount"]) for i in behind if i["balanceAmount"]]
            assert sum(known, Decimal(0)) == Decimal(row[bucket] or "0"), (row, bucket)
            assert {(i["customer"]["name"], i["organizationId"]) for i in behind} <= {
                (row["customerName"], row["organizationId"])
            }
    nobody = _all_invoices(api, customerName="", customerEmail="")
    assert nobody == [], "every seeded invoice states its payer"


TOKYO = "Asia/Tokyo"


def test_a_payment_at_23_30_utc_falls_on_the_next_day_in_tokyo(api: httpx.Client) -> None:
    deliver_all(api, [
        _invoice("org-a", "T-1", "2026-03-31", "100.00", "Ada"),
        _invoice("org-a", "T-1", "2026-03-31", "60.00", "Ada", kind="partial-payment",
                 when="2026-03-01T23:30:00Z"),
    ])  # fmt: skip
    days = {"from": "2026-03-01", "to": "2026-03-02", "interval": "day"}
    in_utc = get(api, "/v1/reports/collections", **days)["items"]
    in_tokyo = get(api, "/v1/reports/collections", **days, timeZone=TOKYO)["items"]
    assert [(r["period"], r["amount"]) for r in in_utc] == [("2026-03-01", "40.00")]
    assert [(r["period"], r["amount"]) for r in in_tokyo] == [("2026-03-02", "40.00")]
    # The Tokyo day 2026-03-01 ended at 15:00 UTC, before the payment.
    first_day = {"from": "2026-03-01", "to": "2026-03-01", "timeZone": TOKYO}
    assert get(api, "/v1/reports/collections", **first_day)["items"] == []


def test_the_aging_day_ends_at_midnight_in_the_time_zone(api: httpx.Client) -> None:
    # Sent at 16:00 UTC on 2026-03-01: already 2026-03-02 in Tokyo.
    deliver_all(api, [_invoice("org-a", "T-2", "2026-03-31", "100.00", "Ada",
                               when="2026-03-01T16:00:00Z")])  # fmt: skip
    assert get(api, "/v1/reports/aging", asOf="2026-03-01")["items"][0]["current"] == "100.00"
    assert get(api, "/v1/reports/aging", asOf="2026-03-01", timeZone=TOKYO)["items"] == []
    tokyo = get(api, "/v1/reports/aging", asOf="2026-03-02", timeZone=TOKYO)
    assert (tokyo["asOf"], tokyo["items"][0]["current"]) == ("2026-03-02", "100.00")
    assert _all_invoices(api, agingBucket="current", asOf="2026-03-01", timeZone=TOKYO) == []
    assert len(_all_invoices(api, agingBucket="current", asOf="2026-03-01")) == 1


def test_periods_cut_by_the_range_say_their_first_and_last_day(api: httpx.Client) -> None:
    deliver_all(api, [
        _invoice("org-a", "P-1", "2026-03-31", "100.00", "Ada"),
        _invoice("org-a", "P-1", "2026-03-31", "90.00", "Ada", kind="partial-payment",
                 when="2026-03-20T10:00:00Z"),
        _invoice("org-a", "P-1", "2026-03-31", "70.00", "Ada", kind="partial-payment",
                 when="2026-04-08T10:00:00Z"),
    ])  # fmt: skip
    months = get(api, "/v1/reports/collections", **{"from": "2026-03-15", "to": "2026-04-10"},
                 interval="month")["items"]  # fmt: skip
    assert [(r["period"], r["firstDay"], r["lastDay"], r["amount"]) for r in months] == [
        ("2026-03", "2026-03-15", "2026-03-31", "10.00"),
        ("2026-04", "2026-04-01", "2026-04-10", "20.00"),
    ]
    # 2026-03-20 is a Friday: its week began on Monday 2026-03-16, before the range.
    weeks = get(api, "/v1/reports/collections", **{"from": "2026-03-18", "to": "2026-03-31"},
                interval="week")["items"]  # fmt: skip
    assert [(r["period"], r["firstDay"], r["lastDay"]) for r in weeks] == [
        ("2026-03-16", "2026-03-18", "2026-03-22")
    ]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/v1/reports/aging", {"timeZone": "Mars/Olympus_Mons"}, "timeZone"),
        ("/v1/reports/aging", {"timeZone": "../../etc/passwd"}, "timeZone"),
        ("/v1/reports/collections", {"from": "2026-03-01", "to": "2026-03-02",
                                     "timeZone": "+09:00"}, "timeZone"),
        ("/v1/invoices", {"agingBucket": "days0To30"}, "agingBucket"),
        ("/v1/invoices", {"asOf": "2026-03-01"}, "asOf"),
        ("/v1/reports/aging", {"groupBy": "currency"}, "groupBy"),
    ],
)  # fmt: skip
def test_an_unknown_time_zone_bucket_or_grouping_is_a_400_naming_it(
    api: httpx.Client, path: str, params: dict[str, str], named: str
) -> None:
    answer = api.get(path, params=params, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(f"{named}:")
