"""A customer's statement on both engines: their open invoices in one currency with days
overdue and aging, the payments in a period, totals that never count unknown as zero, and
nobody else's invoices (another customer, another currency, an erased payer)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.invoice import Collection, InvoiceState
from service.domain.status import InvoiceStatus
from service.read.statements import CustomerStatements, Statement
from service.store.views.changes import ProjectedInvoice
from tests.support.projections import project

pytestmark = pytest.mark.anyio
AS_OF = date(2026, 3, 31)
EMAIL = "tanya.lee@example.com"


def invoice(
    number: str,
    *,
    balance: str | None,
    due: date | None,
    status: InvoiceStatus = InvoiceStatus.SENT,
    email: str = EMAIL,
    currency: str = "USD",
    collected: tuple[tuple[datetime, str | None], ...] = (),
    erased: bool = False,
) -> ProjectedInvoice:
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    state = InvoiceState(
        number,
        organization_id="org-a",
        status=status,
        currency=currency,
        total_amount=Decimal("100.00"),
        balance_amount=None if balance is None else Decimal(balance),
        due_date=due,
        customer_name="Tanya Lee",
        customer_email=email,
        collections=tuple(
            Collection(at, None if amount is None else Decimal(amount)) for at, amount in collected
        ),
        last_event_at=moment,
        last_position=1,
    )
    if erased:
        state = replace(state, customer_name=None, customer_email=None, customer_erased=True)
    return ProjectedInvoice(state, [state], moment)


async def statement(engine: AsyncEngine, currency: str = "USD") -> Statement:
    return await CustomerStatements(engine).statement(
        customer_email=EMAIL, customer_name=None, currency=currency, as_of=AS_OF,
        period_from=date(2026, 3, 1), period_to=AS_OF,
    )  # fmt: skip


async def test_a_statement_lists_what_the_customer_owes_and_paid_and_nothing_else(
    engine: AsyncEngine,
) -> None:
    paid_in_march = ((datetime(2026, 3, 10, 15, tzinfo=UTC), "40.00"),)
    await project(
        engine,
        invoice("S-1", balance="60.00", due=date(2026, 2, 15), collected=paid_in_march,
                status=InvoiceStatus.PARTIAL),
        invoice("S-2", balance="100.00", due=date(2026, 4, 30)),
        invoice("S-3", balance="100.00", due=None),
        invoice("S-4", balance="0.00", due=date(2026, 1, 1), status=InvoiceStatus.PAID,
                collected=((datetime(2026, 2, 27, tzinfo=UTC), "100.00"),)),
        invoice("S-5", balance="100.00", due=date(2026, 3, 1), email="someone@example.com"),
        invoice("S-6", balance="100.00", due=date(2026, 3, 1), currency="EUR"),
        invoice("S-7", balance="100.00", due=date(2026, 3, 1), erased=True),
    )  # fmt: skip
    shown = await statement(engine)

    assert [i.invoice_number for i in shown.open_invoices] == ["S-1", "S-2", "S-3"]
    first = shown.open_invoices[0]
    assert (first.days_overdue, first.aging_bucket) == (44, "days31To60")
    assert shown.owed == Decimal("260.00") and not shown.owed_incomplete
    assert shown.aging["days31To60"] == Decimal("60.00")
    assert shown.aging["current"] == Decimal("100.00")
    assert shown.aging["noDueDate"] == Decimal("100.00")
    assert [(p.invoice_number, p.amount) for p in shown.payments] == [("S-1", Decimal("40.00"))]
    assert shown.paid == Decimal("40.00")
    assert shown.customer_name == "Tanya Lee"


async def test_an_unknown_balance_or_payment_makes_its_total_incomplete_never_zero(
    engine: AsyncEngine,
) -> None:
    unknown_payment = ((datetime(2026, 3, 12, tzinfo=UTC), None),)
    await project(
        engine,
        invoice("U-1", balance=None, due=date(2026, 3, 20), collected=unknown_payment,
                status=InvoiceStatus.PARTIAL),
        invoice("U-2", balance="25.00", due=date(2026, 3, 20)),
    )  # fmt: skip
    shown = await statement(engine)
    assert shown.owed == Decimal("25.00") and shown.owed_incomplete
    [payment] = shown.payments
    assert payment.amount is None and shown.paid_incomplete
