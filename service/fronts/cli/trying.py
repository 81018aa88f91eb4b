"""``sandbox`` and ``sign-webhook``: a local Cybersource, and a signed delivery for curl."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click
import uvicorn

from service.configured_keys import merchants_credentials
from service.cybersource.http_signature import MerchantCredentials
from service.cybersource.jwt_authentication import CertificateCredentials, MerchantCertificate
from service.cybersource.webhook_signature import SignedContent, sign
from service.domain.events import EVENT_TYPE_BY_NOTIFICATION_TYPE
from service.fronts.cli.common import (
    command_settings,
    fail,
)
from service.settings import Settings

if TYPE_CHECKING:
    from service.sandbox.deliveries import WebhookTarget


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=click.IntRange(1, 65535))
@click.option("--webhook-url", help="Where to deliver invoicing webhooks (e.g. the ledger's).")
@click.option(
    "--seconds-per-minute",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.001, 60),
    help="Compress the retry policy's minutes.",
)
@click.option("--drop", default=0.0, type=click.FloatRange(0, 1), help="Share never delivered.")
@click.option("--duplicate", default=0.0, type=click.FloatRange(0, 1), help="Share sent twice.")
@click.option("--delay", default=0.0, type=click.FloatRange(0, 1), help="Share delayed up to 5 s.")
@click.option(
    "--event-date-offset-min-seconds",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0.001, 3600),
    help="Least distance between a webhook's eventDate and its history entry's date.",
)
@click.option(
    "--event-date-offset-max-seconds",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0.001, 3600),
    help="Greatest distance between a webhook's eventDate and its history entry's date.",
)
@click.option(
    "--event-date-order",
    type=click.Choice(["before", "equal", "after"]),
    help="Always date webhooks this way against the history (default: at random).",
)
@click.option("--seed", type=int, help="Seed for delivery faults and event dates.")
@click.option(
    "--payment-amount-in-webhooks",
    is_flag=True,
    help="Add paymentAmount to paid and partial-payment webhooks (undocumented by Cybersource).",
)
@click.option(
    "--transaction-details-on-review",
    is_flag=True,
    help="Show the payment's transactionDetails on PENDING and REJECTED history entries.",
)
@click.option(
    "--payment-transaction-details",
    type=click.Choice(["amount", "transaction-id", "none"]),
    default="amount",
    show_default=True,
    help="What PAYMENT history entries show in transactionDetails: the transaction id and"
    " amount, the id only, or nothing (a payment request's transactionDetails overrides it).",
)
@click.option(
    "--notification-certificate",
    type=click.Path(exists=True, dir_okay=False),
    help="Send every invoicing notification encrypted for this certificate (PEM): message-level"
    " encryption, as after a merchant's keys-asym upload.",
)
@click.option(
    "--encrypted-shape",
    type=click.Choice(["bare", "encData", "encryptedRequest", "payload"]),
    default="encData",
    show_default=True,
    help="How an encrypted notification travels: a bare JWE, in encData or encryptedRequest,"
    " or as the envelope's payload.",
)
@click.option(
    "--encrypted-signature-covers",
    type=click.Choice(["encrypted", "decrypted"]),
    default="encrypted",
    show_default=True,
    help="Sign an encrypted notification as sent, or its clear content.",
)
def sandbox(
    host: str,
    port: int,
    webhook_url: str | None,
    seconds_per_minute: float,
    drop: float,
    duplicate: float,
    delay: float,
    event_date_offset_min_seconds: float,
    event_date_offset_max_seconds: float,
    event_date_order: str | None,
    seed: int | None,
    payment_amount_in_webhooks: bool,
    transaction_details_on_review: bool,
    payment_transaction_details: str,
    notification_certificate: str | None,
    encrypted_shape: str,
    encrypted_signature_covers: str,
) -> None:
    """Serve a local Cybersource: invoicing REST API with HTTP Signature or JWT checks, and
    webhooks.

    It accepts the credentials in LEDGER_CYBERSOURCE_* (with LEDGER_CYBERSOURCE_AUTH=jwt, the key
    file's certificate), or every merchant's of LEDGER_MERCHANTS_FILE, and serves their
    organizations, each with its own invoices; it signs webhooks with the first key of
    LEDGER_WEBHOOK_KEYS, or each organization's with its merchant's first webhook key.
    Customers' doings are unsigned helpers, each taking ?organizationId= (default: the first
    organization): POST /sandbox/invoices/{id}/pay|pending|accept|reject|remind; inject 429/502
    with POST
    /sandbox/faults; read the delivery log at GET /sandbox/deliveries. Signed GET
    /tss/v2/transactions/{id} answers the Transaction Details of the invoices' payments.
    """
    from service.sandbox.app import create_sandbox_app
    from service.sandbox.deliveries import (
        DeliveryFaults,
        RetryPolicy,
        WebhookDeliveries,
    )
    from service.sandbox.errors import SandboxRefusal
    from service.sandbox.event_dates import EventDateOrder, EventTiming
    from service.sandbox.invoices import TransactionDetailsShown
    from service.sandbox.options import SandboxOptions

    settings = command_settings()
    every_credentials = list(merchants_credentials(settings).values())
    if not every_credentials:
        fail("set LEDGER_CYBERSOURCE_MERCHANT_ID, _KEY_ID and _SECRET_KEY (or _AUTH=jwt and"
             " _KEY_FILE), or LEDGER_MERCHANTS_FILE, for the sandbox")  # fmt: skip
    if event_date_offset_min_seconds > event_date_offset_max_seconds:
        fail("--event-date-offset-min-seconds exceeds --event-date-offset-max-seconds")
    deliveries = None
    if webhook_url:
        targets = _webhook_targets(settings, webhook_url)
        if not targets:
            fail("set LEDGER_WEBHOOK_KEYS (or a merchant's webhook_keys): the sandbox signs its"
                 " webhooks with the first key")  # fmt: skip
        deliveries = WebhookDeliveries(
            next(iter(targets.values())),
            RetryPolicy(seconds_per_minute=seconds_per_minute),
            DeliveryFaults(
                drop_share=drop,
                duplicate_share=duplicate,
                delay_share=delay,
                delay_seconds_max=5.0,
                seed=seed,
            ),
            timing=EventTiming(
                offset_seconds_min=event_date_offset_min_seconds,
                offset_seconds_max=event_date_offset_max_seconds,
                seed=seed,
                order=EventDateOrder(event_date_order) if event_date_order else None,
            ),
            include_payment_amount=payment_amount_in_webhooks,
            targets_by_organization=targets,
        )
    # The sandbox holds what Cybersource holds: the shared secret, or only the certificate.
    merchants = [
        credentials.public() if isinstance(credentials, CertificateCredentials) else credentials
        for credentials in every_credentials
    ]
    assert all(isinstance(m, MerchantCredentials | MerchantCertificate) for m in merchants)
    app = create_sandbox_app(
        merchants,  # type: ignore[arg-type]
        organization_ids=settings.cybersource_organizations,
        deliveries=deliveries,
        options=SandboxOptions(
            transaction_details_on_review=transaction_details_on_review,
            payment_transaction_details=TransactionDetailsShown(payment_transaction_details),
            encrypted_event_types=frozenset(
                EVENT_TYPE_BY_NOTIFICATION_TYPE if notification_certificate else ()
            ),
        ),
    )
    if notification_certificate is not None:
        certificate = Path(notification_certificate).read_bytes()
        for organization in app.state.sandbox.organizations.ids:
            try:
                app.state.sandbox.register_notification_certificate(
                    organization,
                    certificate,
                    EVENT_TYPE_BY_NOTIFICATION_TYPE,
                    encrypted_shape,
                    encrypted_signature_covers,
                )
            except SandboxRefusal as refusal:
                fail(f"--notification-certificate: {refusal}")
    uvicorn.run(app, host=host, port=port, log_config=None)


def _webhook_targets(settings: Settings, webhook_url: str) -> dict[str, WebhookTarget]:
    """Each organization's webhook target: its merchant's first webhook key signs (one
    subscription per merchant, as Cybersource keeps them); with LEDGER_WEBHOOK_KEYS, its first
    key signs for every organization (under the empty name: the default)."""
    from service.sandbox.deliveries import WebhookTarget

    targets: dict[str, WebhookTarget] = {}
    if settings.webhook_keys.keys:
        key_id, key = next(iter(settings.webhook_keys.keys.items()))
        targets[""] = WebhookTarget(webhook_url, key_id, key)
    for account in settings.merchant_accounts:
        if account.webhook_keys.keys:
            key_id, key = next(iter(account.webhook_keys.keys.items()))
            target = WebhookTarget(webhook_url, key_id, key)
            targets.update(dict.fromkeys(account.organizations, target))
    return targets


@click.command("sign-webhook")
@click.argument("body_file", type=click.File("rb"), default="-")
@click.option("--key-id", required=True, help="Which key of LEDGER_WEBHOOK_KEYS signs.")
@click.option(
    "--signed-content",
    type=click.Choice([SignedContent.RAW.value, SignedContent.PAYLOAD.value]),
    default=SignedContent.RAW.value,
    show_default=True,
    help="Sign the raw body, or JSON.stringify of its payload field.",
)
def sign_webhook(body_file: BinaryIO, key_id: str, signed_content: str) -> None:
    """Print a v-c-signature header value for BODY_FILE (default: standard input).

    The key is taken from LEDGER_WEBHOOK_KEYS, never from the command line, so it stays out
    of shell history. Useful to try the receiver with curl.
    """
    settings = command_settings()
    key, _ = settings.webhook_keys_by_id.get(key_id, (None, None))
    if key is None:
        fail(f"no configured webhook key has keyId {key_id!r}")
    body = body_file.read()
    try:
        header = sign(key_id, key, body, int(time.time() * 1000), SignedContent(signed_content))
    except (ValueError, KeyError) as error:
        fail(f"cannot sign this body: {error}")
    click.echo(header)
