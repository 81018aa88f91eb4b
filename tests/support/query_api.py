"""The query API as tests call it: the read token, notifications that feed it (one organization's
or the default's), delivering them to a served ledger and reading its answers."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.webhooks import encode, signed_headers

TOKEN = "dashboard-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def notification(kind: str, invoice: str, balance: str, when: str, **extra: Any) -> bytes:
    return encode(
        {
            "notificationId": f"{invoice}-{kind}",
            "eventType": f"invoicing.customer.invoice.{kind}",
            "eventDate": when,
            "webhookId": "wh-1",
            "payloads": [
                {
                    "data": {
                        "invoiceNumber": invoice,
                        "balanceAmount": balance,
                        "totalAmount": "100.00",
                        "currency": "USD",
                        "dueDate": "2026-03-31",
                        "payerName": "Tanya Lee",
                        "emailTo": "tanya@example.com",
                        **extra,
                    }
                }
            ],
        }
    )


def deliver(api: httpx.Client, body: bytes) -> int:
    response = api.post("/webhooks/cybersource", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    return int(api.get("/v1/reports/status", headers=AUTH).headers["X-Ledger-Position"])


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def organization_notification(
    organization: str, kind: str, invoice: str, balance: str | None, when: str, **extra: Any
) -> bytes:
    """A notification for one organization's invoice (numbers repeat across organizations)."""
    document = json.loads(notification(kind, invoice, balance or "", when, **extra))
    document["notificationId"] = f"{organization}-{invoice}-{kind}"
    data = document["payloads"][0]["data"]
    data["organizationID"] = organization
    if balance is None:
        del data["balanceAmount"]
    return encode(document)


def deliver_all(api: httpx.Client, bodies: list[bytes]) -> None:
    """Deliver to a fresh ledger (one event each) and wait until the read model has them."""
    for body in bodies:
        deliver(api, body)
    get(api, "/v1/reports/status", minPosition=len(bodies))


TWO_ORGANIZATIONS = [
    organization_notification("org-a", "send", "1001", "100.00", "2026-03-01T10:00:00Z"),
    organization_notification("org-a", "partial-payment", "1001", "70.00", "2026-03-05T10:00:00Z"),
    organization_notification(
        "org-b", "send", "1001", "40.00", "2026-03-02T10:00:00Z", totalAmount="40.00",
        currency="EUR", dueDate="2026-02-01",
    ),
    organization_notification(
        "org-b", "paid", "1001", "0.00", "2026-03-20T10:00:00Z", totalAmount="40.00",
        currency="EUR", dueDate="2026-02-01",
    ),
]  # fmt: skip
