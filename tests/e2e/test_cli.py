"""The invoice-ledger command, run as a real process with its configuration in the environment."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import free_port
from service.cybersource.webhook_signature import SignedContent, WebhookVerifier
from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import PORTFOLIO, cybersource_environment
from tests.support.webhooks import (
    WEBHOOK_KEY,
    WEBHOOK_KEY_ID,
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
)


def test_an_invalid_setting_stops_the_command_naming_the_variable(tmp_path: Path) -> None:
    result = invoice_ledger(
        "migrate",
        environment={
            "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
            "LEDGER_WEBHOOK_KEYS": "key-without-secret",
            "LEDGER_WEBHOOK_TOLERANCE_SECONDS": "soon",
        },
    )
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "LEDGER_WEBHOOK_KEYS" in message and "keyId:base64key" in message
    assert "LEDGER_WEBHOOK_TOLERANCE_SECONDS" in message
    assert "key-without-secret" not in message  # configuration values are never echoed


def test_serve_refuses_to_start_with_a_notification_key_file_it_cannot_use(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "notifications.p12"
    key_file.write_bytes(b"not a PKCS#12 file")
    result = invoice_ledger(
        "serve",
        "--port",
        str(free_port()),
        environment={
            "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
            "LEDGER_NOTIFICATION_DECRYPTION_KEYS": str(key_file),
            "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD": "never-printed-password",
        },
    )
    assert result.returncode == 2
    message = result.stderr.decode()
    assert f"LEDGER_NOTIFICATION_DECRYPTION_KEYS: {key_file}: not a PKCS#12 file" in message
    assert "never-printed-password" not in message and "Traceback" not in message


def test_a_misspelled_setting_is_named_with_the_closest_and_strict_settings_refuse_it(
    tmp_path: Path,
) -> None:
    environment = {
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
        "LEDGER_WEBHOK_KEYS": "secret-value-never-printed",
    }
    warned = invoice_ledger("migrate", environment=environment)
    assert warned.returncode == 0, warned.stderr
    [line] = [
        json.loads(text) for text in warned.stderr.decode().splitlines()
        if "settings.unknown_variable" in text
    ]  # fmt: skip
    assert (line["variable"], line["closest"], line["level"]) == (
        "LEDGER_WEBHOK_KEYS", "LEDGER_WEBHOOK_KEYS", "warning"
    )  # fmt: skip
    for strict in (["--strict-settings"], []):
        refused = invoice_ledger(
            *strict, "migrate",
            environment={**environment, **({} if strict else {"LEDGER_STRICT_SETTINGS": "true"})},
        )  # fmt: skip
        assert refused.returncode == 2
        message = refused.stderr.decode()
        assert "LEDGER_WEBHOK_KEYS is not a setting (did you mean LEDGER_WEBHOOK_KEYS?)" in message
        assert "secret-value-never-printed" not in message + warned.stderr.decode()


def test_sign_webhook_signs_with_the_configured_key_in_either_form(tmp_path: Path) -> None:
    body = encode(invoice_notification())
    verifier = WebhookVerifier(
        {WEBHOOK_KEY_ID: WEBHOOK_KEY}, tolerance_seconds=60, signed_content=SignedContent.AUTO
    )
    for form in (SignedContent.RAW, SignedContent.PAYLOAD):
        result = invoice_ledger(
            "sign-webhook",
            "--key-id",
            WEBHOOK_KEY_ID,
            "--signed-content",
            form.value,
            environment={"LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING},
            stdin=body,
        )
        assert result.returncode == 0, result.stderr
        header = result.stdout.decode().strip()
        verified = verifier.verify(header, body, int(time.time() * 1000))
        assert verified.signed_content is form


def test_sign_webhook_refuses_a_key_id_that_is_not_configured() -> None:
    result = invoice_ledger(
        "sign-webhook",
        "--key-id",
        "nope",
        environment={"LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING},
        stdin=b"{}",
    )
    assert result.returncode == 2
    assert "nope" in result.stderr.decode()


def test_migrate_runs_again_on_a_migrated_database_and_events_starts_empty(
    database_url: str,
) -> None:
    environment = {"LEDGER_DATABASE_URL": database_url}
    for _ in range(2):
        migrated = invoice_ledger("migrate", environment=environment)
        assert migrated.returncode == 0, migrated.stderr
    result = invoice_ledger("events", environment=environment)
    assert (result.returncode, result.stdout) == (0, b"")


def test_events_lists_what_the_receiver_recorded(base_url: str, database_url: str) -> None:
    import httpx

    from tests.support.webhooks import signed_headers

    body = encode(invoice_notification("INV-CLI", notification_id="n-cli"))
    response = httpx.post(
        f"{base_url}/webhooks/cybersource", content=body, headers=signed_headers(body)
    )
    assert response.json() == {"status": "accepted"}
    result = invoice_ledger(
        "events", "--invoice", "INV-CLI", environment={"LEDGER_DATABASE_URL": database_url}
    )
    [line] = result.stdout.decode().splitlines()
    event = json.loads(line)
    assert (event["streamId"], event["type"], event["source"]) == (
        "INV-CLI",
        "InvoiceSent",
        "webhook",
    )
    # The same names and values as the API's event document.
    [served] = httpx.get(f"{base_url}/v1/invoices/INV-CLI/events").json()["items"]
    assert {name: event[name] for name in served} == served


def test_project_once_catches_up_and_rebuild_reports_the_same_position(
    database_url: str,
) -> None:
    import asyncio

    from service.settings import resolve_database_url
    from service.store.database import create_engine
    from service.store.events.for_engine import event_store_for
    from tests.support.events import invoice_event

    async def append_two() -> None:
        engine = create_engine(resolve_database_url(database_url))
        try:
            store = event_store_for(engine)
            await store.append([invoice_event("A", "a1")])
            await store.append([invoice_event("B", "b1")])
        finally:
            await engine.dispose()

    asyncio.run(append_two())
    environment = {"LEDGER_DATABASE_URL": database_url}
    projected = invoice_ledger("project", "--once", environment=environment)
    assert projected.returncode == 0, projected.stderr
    assert "projection at position 2" in projected.stderr.decode()
    rebuilt = invoice_ledger("rebuild", environment=environment)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "read models rebuilt up to position 2" in rebuilt.stderr.decode()
    # stderr is not a terminal here: no progress bar is drawn into it.
    assert "event/s" not in rebuilt.stderr.decode()

    on_a_terminal = rebuild_on_a_terminal(environment)
    assert "100%" in on_a_terminal and "2/2" in on_a_terminal, on_a_terminal


def rebuild_on_a_terminal(environment: dict[str, str]) -> str:
    """What `rebuild` draws on stderr when stderr is a terminal (a pseudo-terminal here)."""
    import fcntl
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    # A terminal of 100 columns: at the width of 0 a new pseudo-terminal has, no bar fits.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        subprocess.run(
            [sys.executable, "-m", "service.fronts.cli", "rebuild"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env={**os.environ, **environment},
            timeout=60,
            check=True,
        )
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
        return drawn.decode(errors="replace")
    finally:
        os.close(controller)


def test_version_choices_and_exit_codes_follow_the_conventions() -> None:
    version = invoice_ledger("--version", environment={})
    assert version.returncode == 0
    assert version.stdout.decode().startswith("invoice-ledger, version ")
    bogus = invoice_ledger("reconcile", "--sweep", "--status", "bogus", environment={})
    assert bogus.returncode == 2
    assert "'bogus' is not one of" in bogus.stderr.decode()
    helped = invoice_ledger("--help", environment={}).stdout.decode()
    assert "Exit codes: 0 done; 1" in " ".join(helped.split())


def test_subscribe_prints_the_webhook_key_to_configure(sandbox_url: str) -> None:
    result = invoice_ledger(
        "subscribe",
        "--url",
        "https://ledger.example.com/webhooks/cybersource",
        environment=cybersource_environment(sandbox_url),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    [entry] = [line for line in lines if line.startswith("LEDGER_WEBHOOK_KEYS=")]
    key_id, _, key = entry.removeprefix("LEDGER_WEBHOOK_KEYS=").rpartition(":")
    assert f"keyId: {key_id}" in lines and len(key) > 20
    # The key's expiry, and the setting that makes the expiry alerts watch it (365 days).
    [setting] = [line for line in lines if line.startswith("LEDGER_WEBHOOK_KEY_EXPIRES_AT=")]
    expires = datetime.fromisoformat(setting.partition("=")[2])
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=365)
    assert f"expires: {expires.isoformat()}" in lines


def test_reconcile_reports_failures_with_a_non_zero_exit(
    sandbox_url: str, database_url: str
) -> None:
    import httpx

    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        json={"invoiceNumber": "C-1", "totalAmount": "10.00", "dueDate": "2026-12-31"},
    ).raise_for_status()
    environment = {**cybersource_environment(sandbox_url), "LEDGER_DATABASE_URL": database_url}
    good = invoice_ledger("reconcile", "--invoice", "C-1", environment=environment)
    assert good.returncode == 0, good.stderr
    assert "checked 1, changed 1, failed 0" in good.stderr.decode()
    bad = invoice_ledger(
        "reconcile", "--invoice", "C-1", "--invoice", "C-404", environment=environment
    )
    assert bad.returncode == 1
    assert "checked 2, changed 0, failed 1" in bad.stderr.decode()
    assert "C-404: Get Invoice Details: HTTP 404" in bad.stderr.decode()


def test_reconcile_for_a_named_organization_works_with_one_configured(
    sandbox_url: str, database_url: str
) -> None:
    import httpx

    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        json={"invoiceNumber": "C-2", "totalAmount": "10.00", "dueDate": "2026-12-31"},
    ).raise_for_status()
    environment = {**cybersource_environment(sandbox_url), "LEDGER_DATABASE_URL": database_url}
    named = invoice_ledger(
        "reconcile", "--invoice", "C-2", "--organization", "ledgertest", environment=environment
    )
    assert named.returncode == 0, named.stderr
    assert "checked 1, changed 1, failed 0" in named.stderr.decode()
    swept = invoice_ledger(
        "reconcile", "--sweep", "--organization", "ledgertest", environment=environment
    )
    assert swept.returncode == 0, swept.stderr
    assert "checked 1, changed 0, failed 0" in swept.stderr.decode()


def portfolio_environment(sandbox_url: str, database_url: str) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_CYBERSOURCE_BASE_URL": sandbox_url,
        "LEDGER_CYBERSOURCE_MERCHANT_ID": PORTFOLIO.merchant_id,
        "LEDGER_CYBERSOURCE_KEY_ID": PORTFOLIO.key_id,
        "LEDGER_CYBERSOURCE_SECRET_KEY": base64.b64encode(PORTFOLIO.secret_key).decode(),
        "LEDGER_CYBERSOURCE_ORGANIZATION_IDS": ",".join(PORTFOLIO.organization_ids),
    }


def test_reconcile_with_several_organizations_asks_which_one_an_invoice_belongs_to(
    tmp_path: Path,
) -> None:
    environment = portfolio_environment("http://127.0.0.1:9", f"sqlite:///{tmp_path}/l.db")
    unnamed = invoice_ledger("reconcile", "--invoice", "1001", environment=environment)
    assert unnamed.returncode == 2
    assert "2 organizations are configured (ledgerchild1, ledgerchild2)" in unnamed.stderr.decode()
    assert "--organization ORG" in unnamed.stderr.decode()

    stranger = invoice_ledger(
        "reconcile", "--sweep", "--organization", "stranger", environment=environment
    )
    assert stranger.returncode == 2
    assert "--organization stranger is not configured" in stranger.stderr.decode()

    two = invoice_ledger(
        "reconcile", "--invoice", "1001", "--organization", "ledgerchild1",
        "--organization", "ledgerchild2", environment=environment,
    )  # fmt: skip
    assert two.returncode == 2 and "give one --organization" in two.stderr.decode()


def test_reconcile_sweeps_every_configured_organization_or_those_named(
    database_url: str,
) -> None:
    import httpx

    from service.sandbox.app import create_sandbox_app
    from tests.support.server import serving

    with serving(create_sandbox_app([PORTFOLIO])) as sandbox_url:
        for organization in PORTFOLIO.organization_ids:  # one number, two invoices
            httpx.post(
                f"{sandbox_url}/sandbox/invoices",
                params={"organizationId": organization},
                json={"invoiceNumber": "P-1", "totalAmount": "10.00", "dueDate": "2026-12-31"},
            ).raise_for_status()
        environment = portfolio_environment(sandbox_url, database_url)
        every = invoice_ledger("reconcile", "--sweep", environment=environment)
        assert every.returncode == 0, every.stderr
        report = every.stderr.decode()
        assert "checked 2, changed 2, failed 0" in report
        assert "ledgerchild1: checked 1, changed 1, failed 0" in report
        assert "ledgerchild2: checked 1, changed 1, failed 0" in report

        one = invoice_ledger(
            "reconcile", "--sweep", "--organization", "ledgerchild2", environment=environment
        )
        assert one.returncode == 0, one.stderr
        assert "checked 1, changed 0, failed 0" in one.stderr.decode()

        invoice = invoice_ledger(
            "reconcile", "--invoice", "P-1", "--organization", "ledgerchild1",
            environment=environment,
        )  # fmt: skip
        assert invoice.returncode == 0, invoice.stderr
        assert "checked 1, changed 0, failed 0" in invoice.stderr.decode()
