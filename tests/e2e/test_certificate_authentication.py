"""Certificate (JWT) authentication over real sockets: the sandbox holds only the merchant's
certificate, and the ledger's client, its commands and Cybersource's own SDK all get in with
the private key; an expired, foreign or misconfigured key does not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import CertifiedKey, generate_certified_key
from service.reconciler.answers import CybersourceError
from service.reconciler.client import CybersourceClient
from service.sandbox.app import create_sandbox_app
from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import FAST, new_invoice
from tests.support.cybersource_sdk import CyberSource, sdk_jwt_config
from tests.support.server import serving

MERCHANT_ID = "certified_merchant"
PASSWORD = "p12 password"

pytestmark = [
    # The SDK imports pkg_resources and other deprecated modules when it runs.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture(scope="module")
def merchant_key() -> CertifiedKey:
    return generate_certified_key(MERCHANT_ID, "7030519352760180401")


@pytest.fixture
def p12_file(merchant_key: CertifiedKey, tmp_path: Path) -> Path:
    path = tmp_path / f"{MERCHANT_ID}.p12"
    path.write_bytes(merchant_key.pkcs12(PASSWORD.encode()))
    return path


@pytest.fixture
def certificate_sandbox(merchant_key: CertifiedKey) -> Iterator[str]:
    """A sandbox that knows this merchant by its certificate only (no shared secret)."""
    merchant = CertificateCredentials(MERCHANT_ID, merchant_key).public()
    with serving(create_sandbox_app([merchant])) as url:
        yield url


def jwt_environment(sandbox_url: str, key_file: Path, **extra: str) -> dict[str, str]:
    return {
        "LEDGER_CYBERSOURCE_BASE_URL": sandbox_url,
        "LEDGER_CYBERSOURCE_AUTH": "jwt",
        "LEDGER_CYBERSOURCE_MERCHANT_ID": MERCHANT_ID,
        "LEDGER_CYBERSOURCE_KEY_FILE": str(key_file),
        "LEDGER_CYBERSOURCE_KEY_PASSWORD": PASSWORD,
        **extra,
    }


@pytest.mark.anyio
async def test_the_client_fetches_invoices_with_a_jwt(
    certificate_sandbox: str, merchant_key: CertifiedKey
) -> None:
    new_invoice(certificate_sandbox, "J-1")
    credentials = CertificateCredentials(MERCHANT_ID, merchant_key)
    async with CybersourceClient(certificate_sandbox, credentials, FAST) as client:
        assert (await client.get_invoice("J-1"))["id"] == "J-1"
        page = await client.list_invoices(offset=0, limit=10)
        assert [invoice["id"] for invoice in page["invoices"]] == ["J-1"]


@pytest.mark.anyio
async def test_a_foreign_key_with_the_same_kid_is_refused_once(
    certificate_sandbox: str, merchant_key: CertifiedKey
) -> None:
    impostor = CertificateCredentials(
        MERCHANT_ID, generate_certified_key(MERCHANT_ID, merchant_key.kid)
    )
    async with CybersourceClient(certificate_sandbox, impostor, FAST) as client:
        with pytest.raises(CybersourceError, match="HTTP 401 AUTHENTICATION_FAILED"):
            await client.get_invoice("J-1")
        assert client.requests_sent == 1


@pytest.mark.anyio
async def test_an_expired_token_is_refused(merchant_key: CertifiedKey) -> None:
    # Cybersource's clock three minutes ahead: the two-minute token has expired on arrival.
    merchant = CertificateCredentials(MERCHANT_ID, merchant_key)
    sandbox = create_sandbox_app([merchant.public()], clock=lambda: time.time() + 180)
    with serving(sandbox) as url:
        async with CybersourceClient(url, merchant, FAST) as client:
            with pytest.raises(CybersourceError, match="HTTP 401"):
                await client.get_invoice("J-1")


def test_the_official_sdk_gets_in_with_its_jwt(certificate_sandbox: str, p12_file: Path) -> None:
    new_invoice(certificate_sandbox, "J-2")
    config = sdk_jwt_config(
        certificate_sandbox.removeprefix("http://"), MERCHANT_ID, p12_file, PASSWORD,
        IntermediateHost=certificate_sandbox,
    )  # fmt: skip
    invoices = CyberSource.InvoicesApi(config)
    listed, status, _ = invoices.get_all_invoices(0, 10)
    assert status == 200
    assert [invoice.id for invoice in listed.invoices] == ["J-2"]


def test_reconcile_with_a_p12_file(
    certificate_sandbox: str, p12_file: Path, database_url: str
) -> None:
    new_invoice(certificate_sandbox, "J-3")
    environment = {
        **jwt_environment(certificate_sandbox, p12_file),
        "LEDGER_DATABASE_URL": database_url,
    }
    result = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert result.returncode == 0, result.stderr
    assert "changed 1, failed 0" in result.stderr.decode()
    # Nothing of the key or its password reaches the output.
    assert PASSWORD not in (result.stdout + result.stderr).decode()


def test_reconcile_with_a_pem_key_and_its_certificate(
    certificate_sandbox: str, merchant_key: CertifiedKey, tmp_path: Path, database_url: str
) -> None:
    new_invoice(certificate_sandbox, "J-4")
    key_file, certificate_file = tmp_path / "merchant.key", tmp_path / "merchant.crt"
    key_file.write_bytes(merchant_key.private_key_pem(PASSWORD.encode()))
    certificate_file.write_bytes(merchant_key.certificate_pem())
    environment = {
        **jwt_environment(
            certificate_sandbox, key_file, LEDGER_CYBERSOURCE_CERTIFICATE_FILE=str(certificate_file)
        ),
        "LEDGER_DATABASE_URL": database_url,
    }
    result = invoice_ledger("reconcile", "--invoice", "J-4", environment=environment)
    assert result.returncode == 0, result.stderr
    assert "checked 1, changed 1, failed 0" in result.stderr.decode()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"LEDGER_CYBERSOURCE_KEY_PASSWORD": "not it"}, "the password does not open it"),
        ({"LEDGER_CYBERSOURCE_KEY_FILE": "/nonexistent/merchant.p12"}, "no such file"),
        ({"LEDGER_CYBERSOURCE_KEY_FILE": ""}, "needs LEDGER_CYBERSOURCE_MERCHANT_ID and"),
        (
            {"LEDGER_CYBERSOURCE_KEY_ID": "k", "LEDGER_CYBERSOURCE_SECRET_KEY": "c2VjcmV0"},
            "with jwt",
        ),
        ({"LEDGER_CYBERSOURCE_AUTH": "http_signature"}, "set LEDGER_CYBERSOURCE_AUTH=jwt"),
        ({"LEDGER_CYBERSOURCE_AUTH": "oauth"}, "LEDGER_CYBERSOURCE_AUTH"),
    ],
)
def test_a_key_configuration_that_cannot_work_stops_the_command(
    certificate_sandbox: str,
    p12_file: Path,
    database_url: str,
    change: dict[str, str],
    problem: str,
) -> None:
    environment = {
        **jwt_environment(certificate_sandbox, p12_file),
        "LEDGER_DATABASE_URL": database_url,
        **change,
    }
    result = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert result.returncode != 0
    assert problem in result.stderr.decode()
    assert "not it" not in result.stderr.decode()


def test_a_token_is_good_for_one_request(
    certificate_sandbox: str, merchant_key: CertifiedKey
) -> None:
    new_invoice(certificate_sandbox, "J-5")
    path = "/invoicing/v2/invoices/J-5"
    headers = CertificateCredentials(MERCHANT_ID, merchant_key).authenticate(
        method="GET", host=certificate_sandbox.removeprefix("http://"), path_and_query=path,
        body=b"", organization_id=MERCHANT_ID, now=time.time(),
    )  # fmt: skip
    first = httpx.get(certificate_sandbox + path, headers=headers)
    assert first.status_code == 200, first.text
    replayed = httpx.get(certificate_sandbox + path, headers=headers)
    assert replayed.status_code == 401
    assert "used before" in replayed.text


def test_an_expired_certificate_stops_the_command(
    certificate_sandbox: str, tmp_path: Path, database_url: str
) -> None:
    expired = generate_certified_key(
        MERCHANT_ID, "1", valid_days=1, now=datetime.now(UTC) - timedelta(days=30)
    )
    p12 = tmp_path / "expired.p12"
    p12.write_bytes(expired.pkcs12(PASSWORD.encode()))
    environment = {**jwt_environment(certificate_sandbox, p12), "LEDGER_DATABASE_URL": database_url}
    result = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert result.returncode == 2
    assert "LEDGER_CYBERSOURCE_KEY_FILE" in result.stderr.decode()
    assert "the certificate expired on" in result.stderr.decode()
