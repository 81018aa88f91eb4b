"""Where one merchant ends and another begins: a merchant's webhook key records nothing for
another merchant's organization however the notification writes it, a token limited to a
merchant learns nothing of the others from an error, and only a merchant with credentials is
swept, each with its own."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.bootstrap import command_ledger
from service.cybersource.http_signature import MerchantCredentials
from service.reconciler.outcomes import SweepSummary
from service.sandbox.app import create_sandbox_app
from service.settings import Settings, load_settings
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_PATH, encode, invoice_notification, signed_headers

ACME = MerchantCredentials(
    merchant_id="acme",
    key_id="a1a1a1a1-0000-4000-8000-000000000001",
    secret_key=b"acme-shared-secret-0123456789abc",
    organization_ids=("acme", "acme_eu"),
)
ACME_WEBHOOK = ("acme-webhook-key-1", b"acme-webhook-signing-key-0123456789")
# A merchant whose organization id is all digits, and whose webhooks only are configured.
NUMBERED_WEBHOOK = ("numbered-webhook-key-1", b"numbered-webhook-signing-key-01234")
ACME_TOKEN = "acme-read-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789ab"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@dataclass
class Deployment:
    settings: Settings
    url: str


def _settings(database_url: str, directory: Path, base_url: str) -> Settings:
    merchants = directory / "merchants.toml"
    merchants.write_text(
        f"""
[[merchants]]
id = "acme"
organizations = ["acme", "acme_eu"]
key_id = "{ACME.key_id}"
secret_key = "{_b64(ACME.secret_key)}"
webhook_keys = "{ACME_WEBHOOK[0]}:{_b64(ACME_WEBHOOK[1])}"
max_requests_per_second = 200

[[merchants]]
id = "numbered"
organizations = ["12345"]
webhook_keys = "{NUMBERED_WEBHOOK[0]}:{_b64(NUMBERED_WEBHOOK[1])}"
"""
    )
    return load_settings(
        database_url=database_url,
        merchants_file=str(merchants),
        api_tokens=f"read@acme:{ACME_TOKEN},operator:{OPERATOR_TOKEN}",
        cybersource_base_url=base_url,
        reconcile_interval_seconds=3600,
    )


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with serving(create_sandbox_app([ACME])) as sandbox:
        settings = _settings(database_url, tmp_path, sandbox)
        with serving(create_app(settings)) as url:
            yield Deployment(settings, url)


def deliver(url: str, notification: dict[str, Any], key: tuple[str, bytes]) -> httpx.Response:
    body = encode(notification)
    headers = signed_headers(body, key_id=key[0], key=key[1], event_type=notification["eventType"])
    return httpx.post(f"{url}{WEBHOOK_PATH}", content=body, headers=headers)


def invoices(deployment: Deployment) -> list[tuple[str, str]]:
    answer = httpx.get(
        f"{deployment.url}/v1/invoices",
        params={"minPosition": asyncio.run(_position(deployment.settings))},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    return [(item["organizationId"], item["invoiceNumber"]) for item in answer.json()["items"]]


async def _position(settings: Settings) -> int:
    async with command_ledger(settings) as ledger:
        return await ledger.event_store.highest_position()


def test_an_organization_id_written_as_a_number_is_held_to_the_signing_keys_merchant(
    deployment: Deployment,
) -> None:
    # The payload names the organization as a JSON number: it is still organization 12345,
    # numbered's, and acme's key may not sign for it.
    forged = invoice_notification("INV-9", organizationID=12345)
    answer = deliver(deployment.url, forged, ACME_WEBHOOK)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "foreign_organization"
    assert invoices(deployment) == []
    # numbered's own key records it, under its organization.
    assert deliver(deployment.url, forged, NUMBERED_WEBHOOK).status_code == 200
    assert invoices(deployment) == [("12345", "INV-9")]


def test_a_merchant_without_credentials_is_not_swept_as_another(deployment: Deployment) -> None:
    """numbered has webhook keys and no credentials: its organization is never called for
    with acme's (the sandbox refuses acme's key a call for an organization it does not act
    for), and acme's organizations are swept as acme."""
    summary = asyncio.run(_sweep(deployment.settings))
    assert summary.failed == 0, summary.errors
    assert set(summary.by_organization) == {"acme", "acme_eu"}


async def _sweep(settings: Settings) -> SweepSummary:
    async with command_ledger(settings) as ledger, ledger.cybersource_client() as client:
        return await ledger.reconciler(client).sweep()


def test_a_token_limited_to_a_merchant_learns_no_other_merchants_name(
    deployment: Deployment,
) -> None:
    numbered = invoice_notification("INV-9", organizationID="12345")
    assert deliver(deployment.url, numbered, NUMBERED_WEBHOOK).status_code == 200
    position = asyncio.run(_position(deployment.settings))
    for merchant in ("numbered", "gamma"):  # configured or not, not acme's: nothing found
        answer = httpx.get(
            f"{deployment.url}/v1/invoices",
            params={"merchant": merchant, "minPosition": position},
            headers={"Authorization": f"Bearer {ACME_TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["items"] == []
        assert "numbered" not in answer.text
    # Every merchant's token is told which merchants there are.
    unknown = httpx.get(
        f"{deployment.url}/v1/invoices",
        params={"merchant": "gamma"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert unknown.status_code == 400 and "acme, numbered" in unknown.json()["detail"]
