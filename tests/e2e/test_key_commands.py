"""``keys generate``, ``keys show`` and ``subscribe --notification-certificate``, as an operator
runs them: the generated key signs calls the sandbox accepts, nothing secret is shown, and the
sandbox learns the certificate and says which event types arrive encrypted."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import generate_certified_key, load_certified_key
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE
from service.sandbox.app import create_sandbox_app
from service.sandbox.options import SandboxOptions
from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import MERCHANT, cybersource_environment, new_invoice
from tests.support.server import serving

PASSWORD = "generated-key-password"
ENCRYPTED = frozenset({"invoicing.customer.invoice.paid", "invoicing.customer.invoice.send"})


def generate(directory: Path, **environment: str) -> tuple[int, str, str]:
    result = invoice_ledger(
        "keys", "generate", "--merchant-id", "keyed_merchant", "--serial-number", "4242",
        "--directory", str(directory), environment=environment,
    )  # fmt: skip
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_generate_writes_owner_only_files_and_prints_a_new_password_once(tmp_path: Path) -> None:
    code, out, err = generate(tmp_path / "keys")
    assert code == 0, err
    files = sorted((tmp_path / "keys").iterdir())
    assert [file.name for file in files] == [
        "keyed_merchant.crt", "keyed_merchant.key", "keyed_merchant.p12",
    ]  # fmt: skip
    assert all(stat.S_IMODE(file.stat().st_mode) == 0o600 for file in files)
    [line] = [
        line for line in out.splitlines() if line.startswith("LEDGER_CYBERSOURCE_KEY_PASSWORD=")
    ]
    password = line.partition("=")[2].encode()
    key = load_certified_key(tmp_path / "keys" / "keyed_merchant.p12", password)
    assert key.kid == "4242" and key.common_name == "keyed_merchant"
    assert "  kid: 4242" in out and "PRIVATE KEY" not in out

    again, _, refused = generate(tmp_path / "keys")
    assert again == 2 and "exist: remove them" in refused


def test_generate_takes_the_password_from_the_environment_and_does_not_echo_it(
    tmp_path: Path,
) -> None:
    code, out, err = generate(tmp_path, LEDGER_CYBERSOURCE_KEY_PASSWORD=PASSWORD)
    assert code == 0, err
    assert PASSWORD not in out + err
    pem_key = load_certified_key(
        tmp_path / "keyed_merchant.key", PASSWORD.encode(), tmp_path / "keyed_merchant.crt"
    )
    assert pem_key.kid == "4242"


def test_show_prints_identifiers_and_expiry_never_the_key(tmp_path: Path) -> None:
    assert generate(tmp_path, LEDGER_CYBERSOURCE_KEY_PASSWORD=PASSWORD)[0] == 0
    shown = invoice_ledger(
        "keys", "show", str(tmp_path), environment={"LEDGER_CYBERSOURCE_KEY_PASSWORD": PASSWORD}
    )
    out = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr
    # The .p12 and the .key hold one key: shown once.
    assert out.count("  kid: 4242") == 1
    assert "fingerprint (SHA-256): " in out and "expires: " in out
    assert "PRIVATE" not in out and PASSWORD not in out
    wrong = invoice_ledger(
        "keys", "show", str(tmp_path / "keyed_merchant.p12"),
        environment={"LEDGER_CYBERSOURCE_KEY_PASSWORD": "not it"},
    )  # fmt: skip
    assert wrong.returncode == 2 and "password does not open it" in wrong.stderr.decode()


def test_a_generated_key_authenticates_reconcile(tmp_path: Path, database_url: str) -> None:
    assert generate(tmp_path, LEDGER_CYBERSOURCE_KEY_PASSWORD=PASSWORD)[0] == 0
    key = load_certified_key(tmp_path / "keyed_merchant.p12", PASSWORD.encode())
    sandbox = create_sandbox_app([CertificateCredentials("keyed_merchant", key).public()])
    with serving(sandbox) as url:
        new_invoice(url, "G-1")
        result = invoice_ledger(
            "reconcile", "--sweep",
            environment={
                "LEDGER_DATABASE_URL": database_url,
                "LEDGER_CYBERSOURCE_BASE_URL": url,
                "LEDGER_CYBERSOURCE_AUTH": "jwt",
                "LEDGER_CYBERSOURCE_MERCHANT_ID": "keyed_merchant",
                "LEDGER_CYBERSOURCE_KEY_FILE": str(tmp_path / "keyed_merchant.p12"),
                "LEDGER_CYBERSOURCE_KEY_PASSWORD": PASSWORD,
            },
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "changed 1, failed 0" in result.stderr.decode()


@pytest.fixture
def encrypting_sandbox() -> Iterator[tuple[str, object]]:
    app = create_sandbox_app([MERCHANT], options=SandboxOptions(encrypted_event_types=ENCRYPTED))
    with serving(app) as url:
        yield url, app.state.sandbox


def test_subscribe_stores_the_certificate_and_names_the_encrypted_event_types(
    encrypting_sandbox: tuple[str, object], tmp_path: Path
) -> None:
    url, sandbox = encrypting_sandbox
    assert generate(tmp_path, LEDGER_CYBERSOURCE_KEY_PASSWORD=PASSWORD)[0] == 0
    result = invoice_ledger(
        "subscribe", "--url", "https://ledger.example.com/webhooks/cybersource",
        "--notification-certificate", str(tmp_path / "keyed_merchant.crt"),
        environment=cybersource_environment(url),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert f"encrypted event types: {', '.join(sorted(ENCRYPTED))}" in lines
    assert any(line.startswith("notification certificate stored: kid 4242,") for line in lines)
    # From now on the sandbox encrypts the event types it said it would, for this certificate.
    expected = x509.load_pem_x509_certificate((tmp_path / "keyed_merchant.crt").read_bytes())
    encryption = sandbox.notification_encryption  # type: ignore[attr-defined]
    for event_type in EVENT_TYPE_BY_NOTIFICATION_TYPE:
        registered = encryption.for_notification(MERCHANT.merchant_id, event_type)
        assert (registered.certificate if registered else None) == (
            expected if event_type in ENCRYPTED else None
        )
    [subscription] = sandbox.subscriptions  # type: ignore[attr-defined]
    assert subscription["products"][0]["eventTypes"] == list(EVENT_TYPE_BY_NOTIFICATION_TYPE)


def test_subscribe_without_a_certificate_warns_when_cybersource_encrypts(
    encrypting_sandbox: tuple[str, object],
) -> None:
    url, sandbox = encrypting_sandbox
    result = invoice_ledger(
        "subscribe", "--url", "https://ledger.example.com/webhooks/cybersource",
        environment=cybersource_environment(url),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "or they will be dead letters" in result.stderr.decode()
    encryption = sandbox.notification_encryption  # type: ignore[attr-defined]
    assert encryption.for_notification(MERCHANT.merchant_id, sorted(ENCRYPTED)[0]) is None


def test_subscribe_refuses_a_file_that_is_not_a_certificate(
    encrypting_sandbox: tuple[str, object], tmp_path: Path
) -> None:
    url, _ = encrypting_sandbox
    (tmp_path / "not.crt").write_text("hello")
    result = invoice_ledger(
        "subscribe", "--url", "https://ledger.example.com/webhooks/cybersource",
        "--notification-certificate", str(tmp_path / "not.crt"),
        environment=cybersource_environment(url),
    )  # fmt: skip
    assert result.returncode == 2 and "not a PEM certificate" in result.stderr.decode()


def test_show_without_paths_lists_the_configured_keys_by_use(
    tmp_path: Path, database_url: str
) -> None:
    assert generate(tmp_path / "rest", LEDGER_CYBERSOURCE_KEY_PASSWORD=PASSWORD)[0] == 0
    decryption = generate_certified_key("keyed_merchant", "9191")
    (tmp_path / "mle.p12").write_bytes(decryption.pkcs12(b"mle password"))
    shown = invoice_ledger(
        "keys", "show",
        environment={
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_CYBERSOURCE_AUTH": "jwt",
            "LEDGER_CYBERSOURCE_MERCHANT_ID": "keyed_merchant",
            "LEDGER_CYBERSOURCE_KEY_FILE": str(tmp_path / "rest" / "keyed_merchant.p12"),
            "LEDGER_CYBERSOURCE_KEY_PASSWORD": PASSWORD,
            "LEDGER_NOTIFICATION_DECRYPTION_KEYS": str(tmp_path / "mle.p12"),
            "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD": "mle password",
        },
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout.decode()
    assert "keyed_merchant.p12 (REST authentication)\n  kid: 4242" in out
    assert "mle.p12 (notification decryption)\n  kid: 9191" in out
    assert PASSWORD not in out and "mle password" not in out


def test_a_merchant_id_cannot_lead_out_of_the_directory(tmp_path: Path) -> None:
    result = invoice_ledger(
        "keys", "generate", "--merchant-id", "../escaped", "--directory", str(tmp_path / "keys"),
        environment={},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--merchant-id" in result.stderr.decode()
    assert not (tmp_path / "escaped.p12").exists() and not (tmp_path / "keys").exists()
