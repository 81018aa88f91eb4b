"""Building and signing Cybersource invoicing notifications the way Cybersource does."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from service.cybersource.webhook_signature import SignedContent, sign

WEBHOOK_KEY_ID = "bf44c857-b182-bb05-e053-34b8d30a7a72"
WEBHOOK_KEY = b"test-webhook-signing-key-0123456789"
WEBHOOK_KEYS_SETTING = f"{WEBHOOK_KEY_ID}:{base64.b64encode(WEBHOOK_KEY).decode()}"
WEBHOOK_PATH = "/webhooks/cybersource"
# The largest body the ledger served by the e2e ``base_url`` fixture accepts.
MAX_BODY_BYTES = 64 * 1024


def invoice_notification(
    invoice_number: str = "20220389",
    event_type: str = "invoicing.customer.invoice.send",
    *,
    notification_id: str | None = None,
    balance: Any = "102.00",
    currency: str = "USD",
    event_date: str = "2023-05-25T17:49:40.309-07:00",
    **data: Any,
) -> dict[str, Any]:
    """The documented invoicing envelope (``payloads`` list, ``organizationID`` in data)."""
    return {
        "notificationId": notification_id or str(uuid.uuid4()),
        "retryNumber": 0,
        "eventType": event_type,
        "eventDate": event_date,
        "webhookId": "fc8a9385-5ccb-4f8a-a8e8-5e7f8c2f4d11",
        "payloads": [
            {
                "data": {
                    "invoiceNumber": invoice_number,
                    "invoiceBalance": balance,
                    "balanceAmount": balance,
                    "currency": currency,
                    "dueDate": "2023-05-25",
                    "payerName": "Tanya Lee",
                    "emailTo": "tanya@example.com",
                    "eventType": event_type,
                    "organizationID": "invoicetest",
                    **data,
                }
            }
        ],
    }


def encode(notification: dict[str, Any]) -> bytes:
    return json.dumps(notification).encode()


def signed_headers(
    body: bytes,
    *,
    signed_content: SignedContent = SignedContent.RAW,
    timestamp_ms: int | None = None,
    key_id: str = WEBHOOK_KEY_ID,
    key: bytes = WEBHOOK_KEY,
    event_type: str | None = "invoicing.customer.invoice.send",
    retry_count: int = 0,
) -> dict[str, str]:
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    headers = {
        "Content-Type": "application/json",
        "v-c-signature": sign(key_id, key, body, timestamp_ms, signed_content),
        "V-C-Retry-Count": str(retry_count),
        "V-C-Transaction-Trace-Id": f"{uuid.uuid4().hex}-{retry_count}",
        "V-C-Request-Type": "NEW" if retry_count == 0 else "RETRY",
    }
    if event_type:
        headers["V-C-Event-Type"] = event_type
    return headers
