"""Where each payment an invoice page lists came from: the facts that state money at its
provider time, and who established them (a webhook notification, Cybersource's own history
read by the reconciler, or an operator's correction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from service.domain.events import EventSource, InvoiceEventType

# The facts a payment is folded from.
PAYMENT_FACTS = frozenset(
    {
        InvoiceEventType.INVOICE_PAID,
        InvoiceEventType.INVOICE_PARTIALLY_PAID,
        InvoiceEventType.PAYMENT_RECEIVED,
        InvoiceEventType.TRANSACTION_OBSERVED,
    }
)
SOURCE_LABELS = {
    EventSource.WEBHOOK: "webhook notification",
    EventSource.RECONCILER: "Cybersource history (reconciler)",
    EventSource.OPERATOR: "operator correction",
}


def payment_sources(
    payments: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> list[list[dict[str, str]]]:
    """Per payment (documents as /v1 answers them), the sources of the facts in force that
    state money at its provider time, each once, in the order of the trail; an event an
    operator's correction stands in for is left out (the correction counts instead)."""
    by_moment: dict[datetime, list[dict[str, str]]] = {}
    for event in events:
        if event["type"] not in PAYMENT_FACTS or event.get("correctedBy") is not None:
            continue
        found = by_moment.setdefault(_instant(event["occurredAt"]), [])
        source = str(event["source"])
        if source not in (item["source"] for item in found):
            label = SOURCE_LABELS.get(EventSource(source), source) if _known(source) else source
            found.append({"source": source, "label": label})
    return [by_moment.get(_instant(payment["date"]), []) for payment in payments]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _known(source: str) -> bool:
    return source in set(EventSource)
