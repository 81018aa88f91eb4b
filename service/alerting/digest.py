"""What a digest says: how many deliveries wait for an operator, and each one that began
waiting since the last digest, with what an operator needs to find it (its invoice number
where the body names one, its reason and a console link). Identifiers and reasons only: no
payer's name, no amount, no body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from service.cybersource.envelope import dead_letter_identifiers
from service.store.delivery_notices import WaitingDelivery

DIGEST_TYPE = "ledger.deliveries_waiting"


def digest_document(
    items: Sequence[WaitingDelivery],
    waiting_counts: Mapping[str, int],
    *,
    created_at: datetime,
    console_url: str | None,
    items_omitted: int,
) -> dict[str, Any]:
    return {
        "type": DIGEST_TYPE,
        "createdAt": created_at.isoformat(),
        "waiting": {
            "deadLetters": waiting_counts.get("dead_letter", 0),
            "conflicts": waiting_counts.get("conflict", 0),
        },
        "items": [_item(item, console_url) for item in items],
        "itemsOmitted": items_omitted,
    }


def _item(item: WaitingDelivery, console_url: str | None) -> dict[str, Any]:
    identifiers = dead_letter_identifiers(item.body) if item.body is not None else {}
    link = None
    if console_url is not None:
        link = f"{console_url.rstrip('/')}/console/deliveries/{item.delivery_id}"
    return {
        "deliveryId": item.delivery_id,
        "kind": item.kind,
        "receivedAt": item.received_at.isoformat(),
        "invoiceNumber": identifiers.get("invoice_number"),
        "notificationId": item.notification_id or identifiers.get("notification_id"),
        "reason": item.reason,
        "consoleUrl": link,
    }
