"""``keys generate`` and ``keys show``: RSA keys and certificates for certificate authentication
and encrypted notifications, made for local use and the sandbox, and shown without the key."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import click

from service.configured_keys import merchants_credentials, notification_keyring
from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import (
    CertifiedKey,
    KeyMaterialError,
    generate_certified_key,
    load_certified_keys,
)
from service.fronts.cli.common import command_settings, fail

PASSWORD_VARIABLE = "LEDGER_CYBERSOURCE_KEY_PASSWORD"


@click.group()
def keys() -> None:
    """RSA keys and certificates: JWT authentication and encrypted notifications."""


def _file_name(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """The merchant id names the files: nothing that could lead out of --directory."""
    if not re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,99}", value):
        raise click.BadParameter("letters, digits, '_', '-' and '.' (not first), 1 to 100")
    return value


@keys.command()
@click.option(
    "--merchant-id", required=True, callback=_file_name, help="The certificate's common name."
)
@click.option(
    "--serial-number",
    help="The subject's serialNumber, Cybersource's name for the key (the JWT's kid); default:"
    " 20 random digits.",
)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/keys"),
    show_default=True,
)
def generate(merchant_id: str, serial_number: str | None, days: int, directory: Path) -> None:
    """Write an RSA key with a self-signed certificate: MERCHANT.p12 (key and certificate),
    MERCHANT.key (the key, PEM, encrypted) and MERCHANT.crt (the certificate, PEM).

    For local use and the sandbox; Cybersource issues production keys in its Business Center.
    The password is LEDGER_CYBERSOURCE_KEY_PASSWORD when set, else a new one, printed once.
    """
    password = os.environ.get(PASSWORD_VARIABLE) or secrets.token_urlsafe(18)
    key = generate_certified_key(
        merchant_id, serial_number or str(secrets.randbelow(10**20)).zfill(20), valid_days=days
    )
    files = {
        directory / f"{merchant_id}.p12": key.pkcs12(password.encode()),
        directory / f"{merchant_id}.key": key.private_key_pem(password.encode()),
        directory / f"{merchant_id}.crt": key.certificate_pem(),
    }
    if existing := [str(path) for path in files if path.exists()]:
        fail(f"{', '.join(existing)} exist: remove them or choose another --directory")
    directory.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        # Owner-only from the first byte: the key never sits readable by others.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        click.echo(f"wrote {path}", err=True)
    _describe(key)
    if PASSWORD_VARIABLE not in os.environ:
        click.echo(f"{PASSWORD_VARIABLE}={password}")


@keys.command()
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="[PATH]..."
)
def show(paths: tuple[Path, ...]) -> None:
    """Print each key's kid, serial number, fingerprint and expiry, never the key.

    Without PATHs: the configured keys, LEDGER_CYBERSOURCE_KEY_FILE's (REST authentication) and
    LEDGER_NOTIFICATION_DECRYPTION_KEYS' (encrypted notifications). A PATH may be a file or a
    directory of key files; LEDGER_CYBERSOURCE_KEY_PASSWORD opens them.
    """
    settings = command_settings()  # it has loaded the configured keys: they can be used
    if paths:
        password = settings.cybersource_key_password
        secret = password.get_secret_value().encode() if password else None
        for source in paths:
            try:
                found = load_certified_keys(source, secret)
            except KeyMaterialError as error:
                fail(str(error))
            for key in found:
                _describe(key)
        return
    configured = [("notification decryption", key) for key in notification_keyring(settings).keys]
    certified = {
        merchant: credentials.key
        for merchant, credentials in merchants_credentials(settings).items()
        if isinstance(credentials, CertificateCredentials)
    }
    configured[:0] = [
        ("REST authentication" + (f", merchant {merchant}" if len(certified) > 1 else ""), key)
        for merchant, key in certified.items()
    ]
    if not configured:
        fail("no key is configured: give a PATH")
    for use, key in configured:
        _describe(key, use)


def _describe(key: CertifiedKey, use: str | None = None) -> None:
    click.echo(f"source: {key.source}" + (f" ({use})" if use else ""))
    click.echo(f"  kid: {key.kid}")
    if key.certificate is not None:
        click.echo(f"  common name: {key.common_name}")
        click.echo(f"  certificate serial number: {key.certificate.serial_number}")
    click.echo(f"  fingerprint (SHA-256): {key.fingerprint}")
    expires = key.not_after
    click.echo(f"  expires: {expires.isoformat() if expires else 'never (no certificate)'}")
