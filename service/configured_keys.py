"""The keys the settings name, loaded once they are needed: the REST API's credentials (a
shared secret or a certificate) and the client that calls as every merchant with them, the
notification decryption keyring and the personal-data master key. A key that cannot be used is
a ConfigurationError naming its setting and file, never its content."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path

from service.cybersource.credentials import RequestCredentials
from service.cybersource.http_signature import MerchantCredentials
from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import KeyMaterialError, load_certified_key, load_certified_keys
from service.cybersource.message_encryption import NotificationKeyring
from service.reconciler.answers import CallObserver
from service.reconciler.client import CybersourceClient
from service.reconciler.transport import ClientLimits
from service.settings import (
    ConfigurationError,
    MerchantAccount,
    Settings,
    personal_data_master_key,
)
from service.store.personal_data.sealing import MasterKey


class MissingCredentials(Exception):
    """A Cybersource call was asked for without LEDGER_CYBERSOURCE_* credentials."""

    def __init__(self) -> None:
        super().__init__(
            "set LEDGER_CYBERSOURCE_MERCHANT_ID, LEDGER_CYBERSOURCE_KEY_ID and"
            " LEDGER_CYBERSOURCE_SECRET_KEY (or LEDGER_CYBERSOURCE_AUTH=jwt with"
            " LEDGER_CYBERSOURCE_MERCHANT_ID and LEDGER_CYBERSOURCE_KEY_FILE), or a merchant with"
            " credentials in LEDGER_MERCHANTS_FILE, to call Cybersource"
        )


def cybersource_client(
    settings: Settings, observer: CallObserver | None = None, merchant_id: str | None = None
) -> CybersourceClient:
    """A client calling as every configured merchant, each with its credentials and rate
    limit (or as ``merchant_id`` alone); MissingCredentials without any."""
    every = merchants_credentials(settings)
    merchants = [
        (
            every[account.merchant_id],
            ClientLimits(max_requests_per_second=account.max_requests_per_second),
        )
        for account in settings.merchant_accounts
        if account.merchant_id in every and merchant_id in (None, account.merchant_id)
    ]
    if not merchants:
        raise MissingCredentials()
    (credentials, limits), *more = merchants
    return CybersourceClient(
        settings.cybersource_base_url, credentials, limits, observer=observer, more_merchants=more
    )


def merchant_credentials(settings: Settings) -> RequestCredentials | None:
    """The first merchant's credentials (the one a single deployment configures); None when
    no merchant calls Cybersource: the reconciler is off. A key file that cannot be used is a
    ConfigurationError naming it."""
    every = merchants_credentials(settings)
    return next(iter(every.values()), None)


def merchants_credentials(settings: Settings) -> dict[str, RequestCredentials]:
    """Every merchant's credentials by merchant id, in the order configured, for those that
    call Cybersource; ConfigurationError naming the first key file that cannot be used."""
    every: dict[str, RequestCredentials] = {}
    for account in settings.merchant_accounts:
        credentials = account_credentials(account)
        if credentials is not None:
            every[account.merchant_id] = credentials
    return every


def account_credentials(account: MerchantAccount) -> RequestCredentials | None:
    if not account.calls_cybersource:
        return None
    if account.auth == "jwt":
        return _certificate_credentials(account)
    assert account.key_id is not None and account.secret_key is not None
    try:
        secret = base64.b64decode(account.secret_key.get_secret_value(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{account.setting('secret_key')}: is not valid base64") from None
    return MerchantCredentials(
        merchant_id=account.merchant_id,
        key_id=account.key_id,
        secret_key=secret,
        organization_ids=account.organization_ids,
    )


def _certificate_credentials(account: MerchantAccount) -> CertificateCredentials:
    assert account.key_file is not None
    password = account.key_password
    certificate_file = account.certificate_file
    try:
        key = load_certified_key(
            Path(account.key_file),
            password.get_secret_value().encode() if password else None,
            Path(certificate_file) if certificate_file else None,
        )
        if key.not_after is not None and key.not_after < datetime.now(UTC):
            # Cybersource would refuse every call it signs; say so before the first one.
            raise KeyMaterialError(
                f"{key.source}: the certificate expired on {key.not_after.isoformat()}"
            )
        return CertificateCredentials(account.merchant_id, key, account.organization_ids)
    except (KeyMaterialError, ValueError) as error:
        raise ConfigurationError(f"{account.setting('key_file')}: {error}") from None


def reconciled_organizations(settings: Settings) -> tuple[str, ...]:
    """The organizations the reconciler sweeps: those of the merchants with credentials, each
    called as its own merchant (a webhook-only merchant's are never called as another)."""
    return tuple(
        organization
        for account in settings.merchant_accounts
        if account.calls_cybersource
        for organization in account.organizations
    )


def webhook_key_organizations(settings: Settings) -> dict[str, frozenset[str]]:
    """The organizations each merchant's webhook key may sign for (keys of no merchant,
    LEDGER_WEBHOOK_KEYS, sign for any)."""
    return {
        key_id: organizations
        for key_id, (_, organizations) in settings.webhook_keys_by_id.items()
        if organizations is not None
    }


def master_key(settings: Settings) -> MasterKey | None:
    """None without LEDGER_PERSONAL_DATA_KEY: personal data is then stored in clear."""
    if settings.personal_data_key is None:
        return None
    return MasterKey(personal_data_master_key(settings.personal_data_key))


def notification_keyring(settings: Settings) -> NotificationKeyring:
    """The notification decryption keys; ConfigurationError naming the file that cannot be
    used (never its content)."""
    password = _notification_key_password(settings)
    keys = []
    for path in settings.notification_decryption_keys:
        try:
            keys.extend(load_certified_keys(Path(path), password))
        except KeyMaterialError as error:
            raise ConfigurationError(f"LEDGER_NOTIFICATION_DECRYPTION_KEYS: {error}") from None
    return NotificationKeyring(keys, ciphertext_bytes_max=settings.max_body_bytes)


def _notification_key_password(settings: Settings) -> bytes | None:
    path = settings.notification_decryption_key_password_file
    if settings.notification_decryption_key_password is not None:
        if path is not None:
            raise ConfigurationError(
                "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD and"
                " LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD_FILE exclude each other: set one"
            )
        return settings.notification_decryption_key_password.get_secret_value().encode()
    if path is None:
        return None
    try:
        # A mounted secret's file often ends in a newline that is not part of the password.
        return Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as error:
        raise ConfigurationError(
            f"LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD_FILE: {path}: cannot be read"
            f" ({error.strerror})"
        ) from None
