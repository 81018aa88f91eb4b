"""A customer's statement in one currency: the invoices open at the end of a day, each with
its balance and days overdue and their aging, and the payments collected on the customer's
invoices in a period.

The customer is named as Cybersource reports them, by e-mail, or by name when the invoices
state no e-mail; an erased payer is named by neither and has no statement. Amounts are exact;
an invoice or payment of unknown amount is listed as unknown and makes its total incomplete.
The lists are bounded: a statement past them says it was cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import OrganizationScope
from service.domain.reports import AGING_BUCKETS, aging_bucket
from service.read.conditions import OPEN
from service.store.errors import unavailability_as_store_error
from service.store.organization_scope import in_scope
from service.store.schema import invoice_collections, invoices

# A statement is read by a person and printed: past these it is cut, and says so.
OPEN_INVOICES_MAX = 500
PAYMENTS_MAX = 500


@dataclass(frozen=True, slots=True)
class StatementInvoice:
    organization_id: str
    invoice_number: str
    status: str | None
    due_date: date | None
    days_overdue: int | None
    aging_bucket: str
    total: Decimal | None
    balance: Decimal | None


@dataclass(frozen=True, slots=True)
class StatementPayment:
    collected_at: datetime
    organization_id: str
    invoice_number: str
    amount: Decimal | None
    provisional: bool


@dataclass(frozen=True, slots=True)
class Statement:
    customer_name: str | None
    customer_email: str | None
    currency: str
    as_of: date
    period_from: date
    period_to: date
    open_invoices: list[StatementInvoice]
    aging: dict[str, Decimal]
    owed: Decimal
    owed_incomplete: bool
    payments: list[StatementPayment]
    paid: Decimal
    paid_incomplete: bool
    cut: bool  # a list reached its bound


class CustomerStatements:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def statement(
        self,
        *,
        customer_email: str | None,
        customer_name: str | None,
        currency: str,
        as_of: date,
        period_from: date,
        period_to: date,
        organizations: OrganizationScope = None,
    ) -> Statement:
        """``organizations``: only their invoices (a merchant's, or a limited token's)."""
        if not customer_email and not customer_name:
            raise ValueError("a statement names its customer by e-mail or by name")
        customer = and_(
            _customer(customer_email, customer_name),
            *in_scope(invoices.c.organization_id, organizations),
        )
        open_rows, payment_rows = await self._read(customer, currency, period_from, period_to)
        listed = [_open_invoice(row, as_of) for row in open_rows[:OPEN_INVOICES_MAX]]
        payments = [
            StatementPayment(
                row.collected_at,
                row.organization_id,
                row.invoice_number,
                row.amount,
                bool(row.provisional),
            )
            for row in payment_rows[:PAYMENTS_MAX]
        ]
        aging = dict.fromkeys(AGING_BUCKETS, Decimal(0))
        for invoice in listed:
            if invoice.balance is not None:
                aging[invoice.aging_bucket] += invoice.balance
        first = next((row for row in open_rows), None)
        return Statement(
            customer_name=customer_name or (first.customer_name if first else None),
            customer_email=customer_email or (first.customer_email if first else None),
            currency=currency,
            as_of=as_of,
            period_from=period_from,
            period_to=period_to,
            open_invoices=listed,
            aging=aging,
            owed=sum((i.balance for i in listed if i.balance is not None), Decimal(0)),
            owed_incomplete=any(invoice.balance is None for invoice in listed),
            payments=payments,
            paid=sum((p.amount for p in payments if p.amount is not None), Decimal(0)),
            paid_incomplete=any(payment.amount is None for payment in payments),
            cut=len(open_rows) > OPEN_INVOICES_MAX or len(payment_rows) > PAYMENTS_MAX,
        )

    async def _read(
        self, customer: ColumnElement[bool], currency: str, period_from: date, period_to: date
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        columns = invoices.c
        open_query = (
            select(
                columns.organization_id,
                columns.invoice_number,
                columns.status,
                columns.due_date,
                columns.total_amount,
                columns.balance_amount,
                columns.customer_name,
                columns.customer_email,
            )
            .where(customer, columns.currency == currency, columns.status.in_(OPEN))
            # The oldest due first; those without a due date last, on either engine.
            .order_by(
                columns.due_date.is_(None),
                columns.due_date,
                columns.organization_id,
                columns.invoice_number,
            )
            .limit(OPEN_INVOICES_MAX + 1)
        )
        collected = invoice_collections.c
        start = datetime.combine(period_from, time(), UTC)
        end = datetime.combine(period_to + timedelta(days=1), time(), UTC)
        payments_query = (
            select(
                collected.collected_at,
                collected.organization_id,
                collected.invoice_number,
                collected.amount,
                collected.provisional,
            )
            .join(
                invoices,
                and_(
                    invoices.c.organization_id == collected.organization_id,
                    invoices.c.invoice_number == collected.invoice_number,
                ),
            )
            .where(
                customer,
                collected.currency == currency,
                collected.collected_at >= start,
                collected.collected_at < end,
            )
            .order_by(collected.collected_at, collected.organization_id, collected.invoice_number)
            .limit(PAYMENTS_MAX + 1)
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            open_rows = (await connection.execute(open_query)).all()
            payment_rows = (await connection.execute(payments_query)).all()
        return open_rows, payment_rows


def _customer(email: str | None, name: str | None) -> ColumnElement[bool]:
    """The invoices of the customer, as Cybersource names them; never an erased payer's."""
    named = invoices.c.customer_email == email if email else invoices.c.customer_name == name
    return and_(named, invoices.c.customer_erased.is_(False))


def _open_invoice(row: Any, as_of: date) -> StatementInvoice:
    due: date | None = row.due_date
    return StatementInvoice(
        organization_id=row.organization_id,
        invoice_number=row.invoice_number,
        status=row.status,
        due_date=due,
        days_overdue=(as_of - due).days if due is not None and due < as_of else None,
        aging_bucket=aging_bucket(due, as_of),
        total=row.total_amount,
        balance=row.balance_amount,
    )
