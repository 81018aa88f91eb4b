"""The local Cybersource (the sandbox) as tests use it: the credentials it knows, client limits
fast enough for tests, invoices made and moved through its test-only endpoints, and the settings
that point the ``invoice-ledger`` command at it."""

from __future__ import annotations

import base64

import httpx

from service.cybersource.http_signature import MerchantCredentials
from service.reconciler.transport import ClientLimits

MERCHANT = MerchantCredentials(
    merchant_id="ledgertest",
    key_id="5b1e2f6a-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    secret_key=base64.b64decode(base64.b64encode(b"sandbox-shared-secret-0123456789")),
)
PORTFOLIO = MerchantCredentials(
    merchant_id="ledgerportfolio",
    key_id="0f9e8d7c-6b5a-4433-9211-00ffeeddccbb",
    secret_key=base64.b64decode(base64.b64encode(b"portfolio-shared-secret-01234567")),
    organization_ids=("ledgerchild1", "ledgerchild2"),
)
FAST = ClientLimits(
    max_requests_per_second=1000, backoff_initial_seconds=0.01, backoff_max_seconds=0.05
)


def drive(
    sandbox_url: str, path: str, document: dict[str, object] | None = None
) -> dict[str, object]:
    response = httpx.post(f"{sandbox_url}/sandbox{path}", json=document or {})
    assert response.status_code in (200, 201), response.text
    return response.json()


def new_invoice(sandbox_url: str, number: str, total: str = "100.00", **extra: object) -> None:
    drive(
        sandbox_url,
        "/invoices",
        {
            "invoiceNumber": number,
            "totalAmount": total,
            "currency": "USD",
            "dueDate": "2026-12-31",
            **extra,
        },
    )


def create_sandbox_invoices(sandbox_url: str, count: int) -> None:
    with httpx.Client(base_url=sandbox_url, timeout=30) as client:
        for number in range(count):
            invoice = f"SLOW-{number:04d}"
            client.post(
                "/sandbox/invoices",
                json={
                    "invoiceNumber": invoice,
                    "totalAmount": "25.00",
                    "currency": "USD",
                    "dueDate": "2026-12-31",
                    "allowPartialPayments": True,
                },
            ).raise_for_status()
            client.post(f"/sandbox/invoices/{invoice}/send").raise_for_status()
            if number % 2 == 0:
                client.post(f"/sandbox/invoices/{invoice}/pay", json={"amount": "10.00"})


def cybersource_environment(sandbox_url: str) -> dict[str, str]:
    """The command's settings for the sandbox at ``sandbox_url``, as ``MERCHANT``."""
    return {
        "LEDGER_CYBERSOURCE_BASE_URL": sandbox_url,
        "LEDGER_CYBERSOURCE_MERCHANT_ID": MERCHANT.merchant_id,
        "LEDGER_CYBERSOURCE_KEY_ID": MERCHANT.key_id,
        "LEDGER_CYBERSOURCE_SECRET_KEY": base64.b64encode(MERCHANT.secret_key).decode(),
    }
