"""Several merchant accounts in one deployment, against the sandbox playing them: each
merchant's webhooks verify with its own keys and only for its organizations, each merchant is
reconciled with its own credentials, /v1 filters by merchant, and a token limited to one
merchant sees only that merchant's invoices."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.bootstrap import command_ledger
from service.cybersource.http_signature import MerchantCredentials
from service.reconciler.client import CybersourceClient
from service.reconciler.outcomes import SweepSummary
from service.reconciler.transport import ClientLimits
from service.sandbox.app import create_sandbox_app
from service.sandbox.deliveries import RetryPolicy, WebhookDeliveries, WebhookTarget
from service.sandbox.event_dates import EventDateOrder, EventTiming
from service.settings import Settings, load_settings
from tests.support.cli import invoice_ledger
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_PATH, encode, invoice_notification, signed_headers

ACME = MerchantCredentials(
    merchant_id="acme",
    key_id="a1a1a1a1-0000-4000-8000-000000000001",
    secret_key=b"acme-shared-secret-0123456789abc",
    organization_ids=("acme", "acme_eu"),
)
BETA = MerchantCredentials(
    merchant_id="beta",
    key_id="b2b2b2b2-0000-4000-8000-000000000002",
    secret_key=b"beta-shared-secret-0123456789abc",
)
ACME_WEBHOOK = ("acme-webhook-key-1", b"acme-webhook-signing-key-0123456789")
BETA_WEBHOOK = ("beta-webhook-key-1", b"beta-webhook-signing-key-0123456789")
ACME_TOKEN = "acme-read-token-0123456789"
BETA_TOKEN = "beta-read-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789ab"
QUICK_RETRIES = RetryPolicy(seconds_per_minute=0.02)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def write_merchants_file(directory: Path) -> Path:
    """acme's secrets in files of their own (mounted secrets), beta's inline."""
    secrets = directory / "secrets"
    secrets.mkdir()
    (secrets / "acme_secret").write_text(_b64(ACME.secret_key) + "\n")
    (secrets / "acme_webhook_keys").write_text(f"{ACME_WEBHOOK[0]}:{_b64(ACME_WEBHOOK[1])}\n")
    path = directory / "merchants.toml"
    path.write_text(
        f"""
[[merchants]]
id = "acme"
organizations = ["acme", "acme_eu"]
key_id = "{ACME.key_id}"
secret_key_file = "secrets/acme_secret"
webhook_keys_file = "secrets/acme_webhook_keys"
max_requests_per_second = 200

[[merchants]]
id = "beta"
key_id = "{BETA.key_id}"
secret_key = "{_b64(BETA.secret_key)}"
webhook_keys = "{BETA_WEBHOOK[0]}:{_b64(BETA_WEBHOOK[1])}"
max_requests_per_second = 200
"""
    )
    return path


@dataclass
class Estate:
    settings: Settings
    ledger_url: str
    sandbox_url: str


@pytest.fixture
def estate(database_url: str, tmp_path: Path) -> Iterator[Estate]:
    """The ledger for both merchants beside a sandbox playing them, each organization's
    webhooks signed with its merchant's key (one subscription per merchant)."""
    acme, beta = WebhookTarget("", *ACME_WEBHOOK), WebhookTarget("", *BETA_WEBHOOK)
    deliveries = WebhookDeliveries(
        acme, QUICK_RETRIES,
        # Each webhook dated just after its history entry: what the ledger then shows is
        # what the webhooks said, before any sweep.
        timing=EventTiming(0.001, 0.001, order=EventDateOrder.AFTER),
        targets_by_organization={"acme": acme, "acme_eu": acme, "beta": beta},
    )  # fmt: skip
    with serving(create_sandbox_app([ACME, BETA], deliveries=deliveries)) as sandbox:
        settings = _settings(database_url, tmp_path, sandbox)
        with serving(create_app(settings)) as ledger:
            acme.url = beta.url = f"{ledger}{WEBHOOK_PATH}"
            yield Estate(settings, ledger, sandbox)


def _settings(database_url: str, directory: Path, sandbox_url: str) -> Settings:
    merchants = directory / "merchants.toml"
    if not merchants.exists():
        write_merchants_file(directory)
    return load_settings(
        database_url=database_url,
        merchants_file=str(merchants),
        api_tokens=f"read@acme:{ACME_TOKEN},read@beta:{BETA_TOKEN},operator:{OPERATOR_TOKEN}",
        cybersource_base_url=sandbox_url,
        reconcile_interval_seconds=3600,
    )


def act(sandbox_url: str, organization: str, path: str, **document: Any) -> None:
    answer = httpx.post(
        f"{sandbox_url}/sandbox/invoices{path}",
        params={"organizationId": organization},
        json=document or {},
    )
    assert answer.status_code in (200, 201), answer.text


def sent_invoice(sandbox_url: str, organization: str, number: str, total: str) -> None:
    act(sandbox_url, organization, "", invoiceNumber=number, totalAmount=total, currency="USD",
        dueDate="2026-12-31", allowPartialPayments=True)  # fmt: skip
    act(sandbox_url, organization, f"/{number}/send")


def settled(sandbox_url: str, acknowledged: int) -> dict[str, Any]:
    """The delivery log once ``acknowledged`` notifications were (a delivery counts as pending
    only once its task runs, so the count, not pending, says when all have been)."""
    deadline = time.monotonic() + 30
    while True:
        log: dict[str, Any] = httpx.get(f"{sandbox_url}/sandbox/deliveries").json()
        if log["acknowledged"] >= acknowledged and not log["pending"]:
            return log
        assert time.monotonic() < deadline, f"deliveries not acknowledged: {log}"
        time.sleep(0.05)


def read(estate: Estate, token: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{estate.ledger_url}{path}",
        params={"minPosition": _position(estate), **params},
        headers={"Authorization": f"Bearer {token}"},
    )


def _position(estate: Estate) -> int:
    """The last recorded event's position: reads wait until the projection has it."""

    async def highest() -> int:
        async with command_ledger(estate.settings) as ledger:
            return await ledger.event_store.highest_position()

    return asyncio.run(highest())


def listed(estate: Estate, token: str, **params: Any) -> set[tuple[str, str]]:
    answer = read(estate, token, "/v1/invoices", **params)
    assert answer.status_code == 200, answer.text
    return {(item["organizationId"], item["invoiceNumber"]) for item in answer.json()["items"]}


def the_estate(estate: Estate) -> None:
    sent_invoice(estate.sandbox_url, "acme", "INV-1", "100.00")
    sent_invoice(estate.sandbox_url, "acme_eu", "INV-2", "250.00")
    sent_invoice(estate.sandbox_url, "beta", "INV-1", "40.00")  # the same number, beta's
    act(estate.sandbox_url, "beta", "/INV-1/pay", amount="15.00", transactionId="beta-tx-1")
    log = settled(estate.sandbox_url, acknowledged=4)
    assert log["acknowledged"] == log["sent"] == 4


def test_each_merchants_webhooks_verify_with_its_own_keys(estate: Estate) -> None:
    the_estate(estate)
    everything = listed(estate, OPERATOR_TOKEN)
    assert everything == {("acme", "INV-1"), ("acme_eu", "INV-2"), ("beta", "INV-1")}


def test_the_merchant_filter_reads_its_organizations_only(estate: Estate) -> None:
    the_estate(estate)
    assert listed(estate, OPERATOR_TOKEN, merchant="acme") == {
        ("acme", "INV-1"), ("acme_eu", "INV-2"),
    }  # fmt: skip
    assert listed(estate, OPERATOR_TOKEN, merchant="beta") == {("beta", "INV-1")}
    outstanding = read(estate, OPERATOR_TOKEN, "/v1/reports/outstanding", merchant="beta")
    [usd] = outstanding.json()["items"]
    assert Decimal(usd["balanceAmount"]) == Decimal("25.00")
    unknown = read(estate, OPERATOR_TOKEN, "/v1/invoices", merchant="gamma")
    assert unknown.status_code == 400
    assert "merchant" in unknown.json()["detail"] and "acme, beta" in unknown.json()["detail"]


def test_a_token_limited_to_a_merchant_sees_only_its_invoices(estate: Estate) -> None:
    the_estate(estate)
    assert listed(estate, ACME_TOKEN) == {("acme", "INV-1"), ("acme_eu", "INV-2")}
    assert listed(estate, BETA_TOKEN) == {("beta", "INV-1")}
    # Asking for the other merchant finds nothing, never its invoices.
    assert listed(estate, ACME_TOKEN, merchant="beta") == set()
    assert listed(estate, ACME_TOKEN, organizationId="beta") == set()
    # INV-1 exists in acme and beta: for each token it is only its own, and unambiguous.
    acme_invoice = read(estate, ACME_TOKEN, "/v1/invoices/INV-1")
    assert acme_invoice.status_code == 200
    assert acme_invoice.json()["organizationId"] == "acme"
    assert Decimal(acme_invoice.json()["balanceAmount"]) == Decimal("100.00")
    beta_invoice = read(estate, BETA_TOKEN, "/v1/invoices/INV-1")
    assert beta_invoice.json()["organizationId"] == "beta"
    assert read(estate, BETA_TOKEN, "/v1/invoices/INV-2").status_code == 404
    assert read(estate, ACME_TOKEN, "/v1/invoices/INV-1", organizationId="beta").status_code == 404
    assert read(estate, BETA_TOKEN, "/v1/invoices/INV-2/events").status_code == 404
    # Reports add up the token's merchant only.
    [usd] = read(estate, ACME_TOKEN, "/v1/reports/outstanding").json()["items"]
    assert Decimal(usd["balanceAmount"]) == Decimal("350.00") and usd["invoices"] == 2
    statuses = read(estate, BETA_TOKEN, "/v1/reports/status").json()["items"]
    assert {row["status"] for row in statuses} == {"PARTIAL"}
    # What spans merchants is not for it.
    deliveries = read(estate, ACME_TOKEN, "/v1/deliveries")
    assert deliveries.status_code == 403 and deliveries.json()["error"] == "merchant_limited"


def console_csv(estate: Estate, token: str, path: str, **params: str) -> list[dict[str, str]]:
    answer = httpx.get(
        f"{estate.ledger_url}/console/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_console_reads_a_merchant_and_a_limited_token_sees_only_its_own(
    estate: Estate,
) -> None:
    the_estate(estate)
    read(estate, OPERATOR_TOKEN, "/v1/invoices").raise_for_status()  # projected

    def listed_in_console(token: str, **params: str) -> set[tuple[str, str]]:
        rows = console_csv(estate, token, "invoices.csv", **params)
        return {(row["organization"], row["invoice"]) for row in rows}

    assert listed_in_console(OPERATOR_TOKEN, merchant="beta") == {("beta", "INV-1")}
    assert listed_in_console(ACME_TOKEN) == {("acme", "INV-1"), ("acme_eu", "INV-2")}
    assert listed_in_console(ACME_TOKEN, organizationId="beta") == set()
    # The headline figures are the merchant's, as /v1 gives them.
    [headline] = console_csv(estate, BETA_TOKEN, "reports/outstanding.csv")
    [usd] = read(estate, OPERATOR_TOKEN, "/v1/reports/outstanding", merchant="beta").json()["items"]
    assert Decimal(headline["outstanding"]) == Decimal(usd["balanceAmount"]) == Decimal("25.00")
    assert console_csv(estate, BETA_TOKEN, "collections.csv", currency="USD") != []
    assert console_csv(estate, ACME_TOKEN, "collections.csv", currency="USD") == []

    def page(token: str, path: str) -> httpx.Response:
        return httpx.get(f"{estate.ledger_url}{path}", headers={"Authorization": f"Bearer {token}"})

    acme_invoice = page(ACME_TOKEN, "/console/invoices?invoiceNumber=INV-1")
    assert 'data-invoice="acme/INV-1"' in acme_invoice.text
    assert 'data-invoice="beta/INV-1"' not in acme_invoice.text
    # Its audit trail links no delivery for it (the log spans merchants); an operator's does.
    assert 'href="/console/deliveries/' not in acme_invoice.text
    beta_invoice = page(OPERATOR_TOKEN, "/console/invoices?invoiceNumber=INV-1&merchant=beta")
    linked = re.findall(
        r'data-field="delivery"><a href="/console/deliveries/(\d+)', beta_invoice.text
    )
    assert len(linked) == 2  # the send and the partial payment, each from its notification
    for delivery_id in linked:
        delivery = page(OPERATOR_TOKEN, f"/v1/deliveries/{delivery_id}").json()
        assert (delivery["organizationId"], delivery["outcome"]) == ("beta", "accepted")
    overview = page(ACME_TOKEN, "/console")
    assert overview.status_code == 200 and '<option value="acme"' in overview.text
    assert '<option value="beta"' not in overview.text  # nor is the other merchant named
    # Pages that span merchants answer such a token 403.
    for path in ("/console/deliveries", "/console/exports", "/console/operations"):
        assert page(ACME_TOKEN, path).status_code == 403, path
    assert page(OPERATOR_TOKEN, "/console/deliveries").status_code == 200


def test_a_merchants_key_cannot_sign_for_another_merchants_organization(estate: Estate) -> None:
    the_estate(estate)
    forged = invoice_notification(
        "INV-1", "invoicing.customer.invoice.paid", balance="0.00", organizationID="beta"
    )
    body = encode(forged)
    key_id, key = ACME_WEBHOOK
    answer = httpx.post(
        f"{estate.ledger_url}{WEBHOOK_PATH}",
        content=body,
        headers=signed_headers(body, key_id=key_id, key=key, event_type=forged["eventType"]),
    )
    assert answer.status_code == 422 and answer.json()["error"] == "foreign_organization"
    # Kept for an operator, recorded as nothing: beta's invoice still owes what it owed.
    dead = httpx.get(
        f"{estate.ledger_url}/v1/deliveries",
        params={"outcome": "rejected"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    ).json()["items"]
    assert [item["reason"].split(":")[0] for item in dead] == ["foreign_organization"]
    beta_invoice = read(estate, BETA_TOKEN, "/v1/invoices/INV-1").json()
    assert Decimal(beta_invoice["balanceAmount"]) == Decimal("25.00")
    # Signed with beta's own key, the same notification is beta's fact.
    key_id, key = BETA_WEBHOOK
    answer = httpx.post(
        f"{estate.ledger_url}{WEBHOOK_PATH}",
        content=body,
        headers=signed_headers(body, key_id=key_id, key=key, event_type=forged["eventType"]),
    )
    assert answer.status_code == 200, answer.text


def test_each_merchant_is_reconciled_with_its_own_credentials(estate: Estate) -> None:
    """The sandbox checks every call's signature against the merchant whose key signed it
    and refuses a call for an organization that merchant does not act for."""
    the_estate(estate)
    # A draft sends no webhook: only a sweep of acme_eu, as acme, finds it.
    act(estate.sandbox_url, "acme_eu", "", invoiceNumber="ONLY-IN-CYBERSOURCE",
        totalAmount="75.00", currency="USD", dueDate="2026-12-31")  # fmt: skip
    summary = asyncio.run(_sweep(estate.settings))
    assert summary.failed == 0, summary.errors
    assert set(summary.by_organization) == {"acme", "acme_eu", "beta"}
    found = read(estate, ACME_TOKEN, "/v1/invoices/ONLY-IN-CYBERSOURCE")
    assert found.status_code == 200 and found.json()["organizationId"] == "acme_eu"


async def _sweep(settings: Settings) -> SweepSummary:
    async with command_ledger(settings) as ledger, ledger.cybersource_client() as client:
        return await ledger.reconciler(client).sweep()


def test_subscribe_creates_the_webhook_key_of_the_merchant_named(tmp_path: Path) -> None:
    with serving(create_sandbox_app([ACME, BETA])) as sandbox_url:
        environment = {
            "LEDGER_MERCHANTS_FILE": str(write_merchants_file(tmp_path)),
            "LEDGER_CYBERSOURCE_BASE_URL": sandbox_url,
        }
        url = "https://ledger.example.com/webhooks/cybersource"
        unnamed = invoice_ledger("subscribe", "--url", url, environment=environment)
        assert unnamed.returncode == 2
        assert "name the merchant with --merchant: acme, beta" in unnamed.stderr.decode()
        # The sandbox refuses a call for beta signed with acme's key: beta's own signs it.
        done = invoice_ledger(
            "subscribe", "--url", url, "--merchant", "beta", environment=environment
        )
        assert done.returncode == 0, done.stderr
        [entry] = [line for line in done.stdout.decode().splitlines() if "webhook_keys = " in line]
        assert entry.startswith('merchant beta in LEDGER_MERCHANTS_FILE: webhook_keys = "')
        foreign = invoice_ledger(
            "subscribe", "--url", url, "--merchant", "beta", "--organization-id", "acme_eu",
            environment=environment,
        )  # fmt: skip
        assert foreign.returncode == 2
        assert "merchant beta acts for beta" in foreign.stderr.decode()


def test_an_accounting_export_may_keep_to_one_merchant_and_posts_each_payment_once(
    estate: Estate,
) -> None:
    the_estate(estate)
    act(estate.sandbox_url, "acme_eu", "/INV-2/pay", amount="50.00", transactionId="acme-tx-1")
    settled(estate.sandbox_url, acknowledged=5)
    # A read at the last recorded position: the exports read a projection that has them.
    read(estate, OPERATOR_TOKEN, "/v1/invoices").raise_for_status()
    today = datetime.now(UTC).date().isoformat()

    def export(**merchant: str) -> dict[str, Any]:
        created = httpx.post(
            f"{estate.ledger_url}/v1/exports",
            json={"kind": "payments", "from": today, "to": today, **merchant},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert created.status_code == 200, created.text
        document: dict[str, Any] = httpx.get(
            f"{estate.ledger_url}/v1/exports/{created.json()['id']}",
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        ).json()
        return document

    betas = export(merchant="beta")
    assert betas["export"]["merchant"] == "beta"
    assert [(line["organizationId"], line["amount"]) for line in betas["lines"]] == [
        ("beta", "15.00")
    ]
    # Every merchant's export next: beta's payment is posted already, acme_eu's is not.
    everyone = export()
    assert everyone["export"]["merchant"] is None
    assert [(line["organizationId"], line["amount"]) for line in everyone["lines"]] == [
        ("acme_eu", "50.00")
    ]
    unknown = httpx.post(
        f"{estate.ledger_url}/v1/exports",
        json={"kind": "payments", "from": today, "to": today, "merchant": "gamma"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert unknown.status_code == 400 and "gamma" in unknown.json()["detail"]


def test_each_merchants_organizations_are_swept_at_its_own_rate() -> None:
    """The client groups organizations by the merchant calling for them: each group is swept
    beside the others, at its own limit."""
    client = CybersourceClient(
        "http://127.0.0.1:9", ACME, ClientLimits(), more_merchants=[(BETA, ClientLimits())]
    )
    groups = client.merchant_groups(["acme", "beta", "acme_eu", "elsewhere"])
    # An organization no merchant acts for goes out as the first merchant (refused there).
    assert groups == [("acme", "acme_eu", "elsewhere"), ("beta",)]
    asyncio.run(client.close())
    # An organization one merchant lists is that merchant's, though it is another's own id.
    lister = MerchantCredentials("lister", "lister-key", b"l" * 32, organization_ids=("beta",))
    client = CybersourceClient(
        "http://127.0.0.1:9", BETA, ClientLimits(), more_merchants=[(lister, ClientLimits())]
    )
    assert client.merchant_groups(["beta", "lister"]) == [("beta", "lister")]
    asyncio.run(client.close())
