"""A stream's fold snapshot as stored: JSON, amounts as decimal strings, instants in ISO 8601.

The projector keeps one per stream (invoice number) so that a batch folds only its new facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from service.domain.invoice import Collection, FoldSnapshot, InvoiceState, Payment
from service.domain.status import InvoiceStatus

# Bumped when the stored shape changes: a snapshot of another version is ignored (the stream
# is then folded from all its facts, and its snapshot written anew).
SNAPSHOT_FORMAT = 2


@dataclass(frozen=True, slots=True)
class InvoiceSnapshot:
    fold: FoldSnapshot
    updated_at: datetime  # when the store last recorded a fact about the invoice


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """Each invoice's fold in a stream, and which organizations the stream's facts name (a
    fact naming none belongs with the others only while they name one)."""

    named_organizations: frozenset[str]
    invoices: Mapping[str, InvoiceSnapshot]  # by organization id


def encode_snapshot(snapshot: StreamSnapshot) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "named": sorted(snapshot.named_organizations),
        "invoices": [
            {
                "state": _encode_state(invoice.fold.last_state),
                "lastFact": [invoice.fold.last_fact[0].isoformat(), invoice.fold.last_fact[1]],
                "highestPosition": invoice.fold.highest_position,
                "observed": invoice.fold.observed,
                "matchedPayments": sorted(invoice.fold.matched_payments),
                "updatedAt": invoice.updated_at.isoformat(),
            }
            for _, invoice in sorted(snapshot.invoices.items())
        ],
    }


def decode_snapshot(document: Mapping[str, Any]) -> StreamSnapshot | None:
    if document.get("format") != SNAPSHOT_FORMAT:
        return None
    invoices = {}
    for item in document["invoices"]:
        moment, position = item["lastFact"]
        fold = FoldSnapshot(
            last_state=_decode_state(item["state"]),
            last_fact=(datetime.fromisoformat(moment), position),
            highest_position=item["highestPosition"],
            observed=item["observed"],
            matched_payments=frozenset(item["matchedPayments"]),
        )
        invoices[fold.last_state.organization_id] = InvoiceSnapshot(
            fold, datetime.fromisoformat(item["updatedAt"])
        )
    return StreamSnapshot(frozenset(document["named"]), invoices)


def _encode_state(state: InvoiceState) -> dict[str, Any]:
    return {
        "invoiceNumber": state.invoice_number,
        "organizationId": state.organization_id,
        "status": state.status.value if state.status else None,
        "currency": state.currency,
        "total": _amount(state.total_amount),
        "balance": _amount(state.balance_amount),
        "dueDate": state.due_date.isoformat() if state.due_date else None,
        "customerName": state.customer_name,
        "customerEmail": state.customer_email,
        "payments": [
            [p.transaction_id, _amount(p.amount), p.received_at.isoformat()]
            for p in state.payments
        ],
        "collections": [
            [c.collected_at.isoformat(), _amount(c.amount), c.provisional]
            for c in state.collections
        ],
        "lastEventAt": state.last_event_at.isoformat() if state.last_event_at else None,
        "lastPosition": state.last_position,
        "totalProvisional": state.total_provisional,
        "balanceProvisional": state.balance_provisional,
    }


def _decode_state(data: Mapping[str, Any]) -> InvoiceState:
    due, last = data["dueDate"], data["lastEventAt"]
    return InvoiceState(
        invoice_number=data["invoiceNumber"],
        organization_id=data["organizationId"],
        status=InvoiceStatus(data["status"]) if data["status"] else None,
        currency=data["currency"],
        total_amount=_decimal(data["total"]),
        balance_amount=_decimal(data["balance"]),
        due_date=date.fromisoformat(due) if due else None,
        customer_name=data["customerName"],
        customer_email=data["customerEmail"],
        payments=tuple(
            Payment(transaction, _decimal(amount), datetime.fromisoformat(at))
            for transaction, amount, at in data["payments"]
        ),
        collections=tuple(
            Collection(datetime.fromisoformat(at), _decimal(amount), provisional)
            for at, amount, provisional in data["collections"]
        ),
        last_event_at=datetime.fromisoformat(last) if last else None,
        last_position=data["lastPosition"],
        total_provisional=data["totalProvisional"],
        balance_provisional=data["balanceProvisional"],
    )


def _amount(amount: Decimal | None) -> str | None:
    # str, not format(.., "f"): it round-trips the exponent too, so 1.50 stays 1.50.
    return None if amount is None else str(amount)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
