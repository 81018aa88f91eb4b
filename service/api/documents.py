"""The JSON shapes the API answers with.

Amounts are decimal strings with their currency's exponent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row

from service.domain.events import RecordedEvent
from service.domain.invoice import InvoiceState
from service.domain.money import format_amount


def money(amount: Decimal | None, currency: str | None) -> str | None:
    # copy_abs: a provider's "-0.00" is zero, and a document never shows a minus sign.
    return None if amount is None else format_amount(_unsigned_zero(amount), currency)


def _unsigned_zero(amount: Decimal) -> Decimal:
    return amount.copy_abs() if amount.is_zero() else amount


def paid_money(total: Decimal | None, balance: Decimal | None, currency: str | None) -> str | None:
    """Total less balance; null when either is unknown or the balance exceeds the total (the
    facts disagree, and the reconciler treats such an invoice as doubtful): never negative."""
    if total is None or balance is None or balance > total:
        return None
    return money(total - balance, currency)


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _customer(name: str | None, email: str | None) -> dict[str, str | None] | None:
    return None if name is None and email is None else {"name": name, "email": email}


def invoice_from_row(row: Row[Any]) -> dict[str, Any]:
    total, balance = row.total_amount, row.balance_amount
    currency = row.currency
    return {
        "organizationId": row.organization_id,
        "invoiceNumber": row.invoice_number,
        "status": row.status,
        "currency": currency,
        "totalAmount": money(total, currency),
        "balanceAmount": money(balance, currency),
        "paidAmount": paid_money(total, balance, currency),
        "dueDate": _day(row.due_date),
        "customer": _customer(row.customer_name, row.customer_email),
        "payments": [
            {
                "transactionId": payment["transactionId"],
                "amount": money(Decimal(payment["amount"]), currency)
                if payment["amount"]
                else None,
                "date": payment["date"].replace("+00:00", "Z"),
            }
            for payment in row.payments
        ],
        "lastEventAt": _instant(row.last_event_at),
        "updatedAt": _instant(row.updated_at),
    }


def invoice_from_state(state: InvoiceState, updated_at: datetime | None) -> dict[str, Any]:
    currency = state.currency
    return {
        "organizationId": state.organization_id,
        "invoiceNumber": state.invoice_number,
        "status": state.status.value if state.status else None,
        "currency": currency,
        "totalAmount": money(state.total_amount, currency),
        "balanceAmount": money(state.balance_amount, currency),
        "paidAmount": paid_money(state.total_amount, state.balance_amount, currency),
        "dueDate": _day(state.due_date),
        "customer": _customer(state.customer_name, state.customer_email),
        "payments": [
            {
                "transactionId": payment.transaction_id,
                "amount": money(payment.amount, currency),
                "date": _instant(payment.received_at),
            }
            for payment in state.payments
        ],
        "lastEventAt": _instant(state.last_event_at),
        "updatedAt": _instant(updated_at),
    }


def event_document(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "type": event.type,
        "occurredAt": _instant(event.occurred_at),
        "recordedAt": _instant(event.recorded_at),
        "source": event.source.value,
        "data": event.data,
    }


def report_items(
    rows: Sequence[Mapping[str, Any]], amount_fields: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Rows with Decimal amounts as strings in each row's currency, and unknown sums as None;
    ``amount_fields`` renames."""
    items = []
    for row in rows:
        item = {key: value for key, value in row.items() if key not in amount_fields}
        for field, name in amount_fields.items():
            item[name] = money(row[field], row.get("currency"))
        items.append(item)
    return items
