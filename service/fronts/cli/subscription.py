"""``subscribe``: the webhook key, the certificate notifications are encrypted for, and the
subscription to the invoicing events, set up with Cybersource in one command."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service.configured_keys import MissingCredentials, cybersource_client
from service.cybersource.keys import subject_serial_number
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE
from service.fronts.cli.common import command_settings, fail
from service.settings import MerchantAccount, Settings


@click.command()
@click.option("--url", required=True, help="The public HTTPS URL of /webhooks/cybersource.")
@click.option(
    "--merchant",
    help="With LEDGER_MERCHANTS_FILE: the merchant whose credentials subscribe (default: the"
    " only one).",
)
@click.option("--organization-id", help="Defaults to the merchant id.")
@click.option(
    "--notification-certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PEM certificate (the .crt of `keys generate`) for Cybersource to encrypt"
    " notifications to; its private key goes in LEDGER_NOTIFICATION_DECRYPTION_KEYS.",
)
def subscribe(
    url: str,
    merchant: str | None,
    organization_id: str | None,
    notification_certificate: Path | None,
) -> None:
    """Create a webhook signing key and a subscription to the invoicing events.

    Prints the keyId and the LEDGER_WEBHOOK_KEYS entry to configure (a secret: store it), and
    which event types Cybersource will send encrypted (message-level encryption). With
    --notification-certificate it first stores that certificate with Cybersource.
    """
    if not url.startswith("https://"):
        fail("Cybersource delivers only to https URLs on port 443 or 8443")
    settings = command_settings()
    account = _merchant(settings, merchant)
    organization = organization_id or account.merchant_id
    if organization not in account.organizations:
        fail(
            f"--organization-id {organization}: merchant {account.merchant_id} acts for"
            f" {', '.join(account.organizations)}"
        )
    certificate = _certificate(notification_certificate) if notification_certificate else None
    done = asyncio.run(_subscribe(settings, account.merchant_id, organization, url, certificate))
    encrypted = sorted(name for name, encrypts in done.encrypted_event_types.items() if encrypts)
    click.echo(f"encrypted event types: {', '.join(encrypted) or 'none'}")
    if certificate is not None:
        click.echo(
            f"notification certificate stored: kid {subject_serial_number(certificate) or '-'},"
            f" serial {certificate.serial_number}, expires"
            f" {certificate.not_valid_after_utc.isoformat()}"
        )
    elif encrypted:
        click.echo(
            "Cybersource encrypts these event types: store a certificate with"
            " --notification-certificate and configure its key in"
            " LEDGER_NOTIFICATION_DECRYPTION_KEYS, or they will be dead letters",
            err=True,
        )
    information = done.key.get("keyInformation", {})
    click.echo(f"webhookId: {done.subscription.get('webhookId')}")
    click.echo(f"keyId: {information.get('keyId')}")
    entry = f"{information.get('keyId')}:{information.get('key')}"
    if settings.merchants_file is None:
        click.echo(f"LEDGER_WEBHOOK_KEYS={entry}")
    else:
        click.echo(
            f'merchant {account.merchant_id} in LEDGER_MERCHANTS_FILE: webhook_keys = "{entry}"'
        )
    expires = _key_expiry(information.get("expirationDate"))
    if expires is None:
        click.echo("expires: not stated by Cybersource (see its Key Management page)")
    else:
        click.echo(f"expires: {expires.isoformat()}")
        # The expiry alerts (and the gauge) read it from here.
        click.echo(f"LEDGER_WEBHOOK_KEY_EXPIRES_AT={expires.isoformat()}")


def _merchant(settings: Settings, named: str | None) -> MerchantAccount:
    """The merchant named, else the only one; a one-line failure otherwise."""
    accounts = [account for account in settings.merchant_accounts if account.calls_cybersource]
    if not accounts:
        fail(str(MissingCredentials()))
    if named is None:
        if len(accounts) > 1:
            fail(f"name the merchant with --merchant: {', '.join(a.merchant_id for a in accounts)}")
        return accounts[0]
    for account in accounts:
        if account.merchant_id == named:
            return account
    fail(f"--merchant {named}: no merchant of that id calls Cybersource")


def _certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        fail(f"{path}: not a PEM certificate")


def _key_expiry(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Subscribed:
    encrypted_event_types: dict[str, bool]
    key: dict[str, Any]
    subscription: dict[str, Any]


async def _subscribe(
    settings: Settings,
    merchant_id: str,
    organization_id: str,
    url: str,
    certificate: x509.Certificate | None,
) -> Subscribed:
    """The certificate before the subscription: no notification goes out encrypted for a
    key Cybersource does not hold yet."""
    async with cybersource_client(settings, merchant_id=merchant_id) as client:
        encrypted = await client.encrypted_event_types(organization_id)
        if certificate is not None:
            await client.store_notification_certificate(
                organization_id, certificate.public_bytes(serialization.Encoding.DER)
            )
        key = await client.create_webhook_key(organization_id)
        subscription = await client.create_webhook_subscription(
            organization_id, url, list(EVENT_TYPE_BY_NOTIFICATION_TYPE)
        )
    return Subscribed(encrypted, key, subscription)
