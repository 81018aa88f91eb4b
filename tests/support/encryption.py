"""Notification decryption keys as an operator holds them (files), and notifications encrypted
for them as Cybersource sends them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.cybersource.keys import CertifiedKey, generate_certified_key
from service.cybersource.message_encryption import Shape, encrypt_notification

KEY_PASSWORD = "notification-key-password"


def notification_key(serial: str) -> CertifiedKey:
    return generate_certified_key("ledgertest", serial)


def key_files(directory: Path, *keys: CertifiedKey) -> str:
    """The keys written as Cybersource's Business Center issues them (PKCS#12) or as an
    operator may convert them (encrypted PEM), alternately: the setting naming them."""
    paths = []
    for index, key in enumerate(keys):
        if index % 2 == 0:
            path = directory / f"notification-{key.kid}.p12"
            path.write_bytes(key.pkcs12(KEY_PASSWORD.encode()))
        else:
            path = directory / f"notification-{key.kid}.pem"
            path.write_bytes(key.private_key_pem(KEY_PASSWORD.encode()) + key.certificate_pem())
        paths.append(str(path))
    return ",".join(paths)


def encrypted_for(key: CertifiedKey, notification: bytes, shape: Shape, **options: Any) -> bytes:
    assert key.certificate is not None
    return encrypt_notification(notification, key.certificate, shape, **options)


def replaced_token(body: bytes, token: bytes) -> bytes:
    """``body`` (any shape) with its JWE replaced."""
    stripped = body.strip()
    if not stripped.startswith(b"{"):
        return token
    document = json.loads(stripped)
    for name in ("encData", "encryptedRequest"):
        if name in document:
            document[name] = token.decode()
            return json.dumps(document).encode()
    for name in ("payload", "payloads"):
        if isinstance(document.get(name), dict):
            document[name]["encData"] = token.decode()
            return json.dumps(document).encode()
    raise ValueError("no JWE in the body")


def token_of(body: bytes) -> bytes:
    stripped = body.strip()
    if not stripped.startswith(b"{"):
        return stripped
    document = json.loads(stripped)
    for name in ("encData", "encryptedRequest"):
        if name in document:
            return str(document[name]).encode()
    for name in ("payload", "payloads"):
        if isinstance(document.get(name), dict):
            return str(document[name]["encData"]).encode()
    raise ValueError("no JWE in the body")
