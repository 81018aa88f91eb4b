"""The keys the settings name, loaded once they are needed: the REST API's credentials (a
shared secret or a certificate), the notification decryption keyring and the personal-data
master key. A key that cannot be used is a ConfigurationError naming its setting and file,
never its content."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from service.cybersource.credentials import RequestCredentials
from service.cybersource.http_signature import MerchantCredentials
from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import KeyMaterialError, load_certified_key, load_certified_keys
from service.cybersource.message_encryption import NotificationKeyring
from service.settings import ConfigurationError, Settings, personal_data_master_key
from service.store.personal_data.sealing import MasterKey


def merchant_credentials(settings: Settings) -> RequestCredentials | None:
    """None when no credentials are configured: the reconciler is off. A key file that cannot
    be used is a ConfigurationError naming it."""
    if settings.cybersource_auth == "jwt":
        return _certificate_credentials(settings)
    if not (settings.cybersource_merchant_id and settings.cybersource_key_id):
        return None
    if settings.cybersource_secret_key is None:
        return None
    return MerchantCredentials(
        merchant_id=settings.cybersource_merchant_id,
        key_id=settings.cybersource_key_id,
        secret_key=base64.b64decode(settings.cybersource_secret_key.get_secret_value()),
        organization_ids=settings.cybersource_organization_ids,
    )


def _certificate_credentials(settings: Settings) -> CertificateCredentials | None:
    if not (settings.cybersource_merchant_id and settings.cybersource_key_file):
        return None
    password = settings.cybersource_key_password
    certificate_file = settings.cybersource_certificate_file
    try:
        key = load_certified_key(
            Path(settings.cybersource_key_file),
            password.get_secret_value().encode() if password else None,
            Path(certificate_file) if certificate_file else None,
        )
        if key.not_after is not None and key.not_after < datetime.now(UTC):
            # Cybersource would refuse every call it signs; say so before the first one.
            raise KeyMaterialError(
                f"{key.source}: the certificate expired on {key.not_after.isoformat()}"
            )
        return CertificateCredentials(
            settings.cybersource_merchant_id, key, settings.cybersource_organization_ids
        )
    except (KeyMaterialError, ValueError) as error:
        raise ConfigurationError(f"LEDGER_CYBERSOURCE_KEY_FILE: {error}") from None


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
