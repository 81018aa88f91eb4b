"""Signing a request as the Standard Webhooks specification says (standardwebhooks.com):
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``{id}.{timestamp}.{body}``, keyed by the secret's decoded bytes. A receiver verifies it with
any of the specification's libraries; the id stays the same when a message is sent again, so
it can drop repeats."""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_VERSION = "v1"


def signature(key: bytes, message_id: str, timestamp_seconds: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp_seconds}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    key: bytes, message_id: str, timestamp_seconds: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_seconds),
        "webhook-signature": signature(key, message_id, timestamp_seconds, body),
        "content-type": "application/json",
    }
