"""The console's headline figures per currency, on both engines: what is owed, overdue and
open, collected this month and last, and DSO from what was billed in the last 90 days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.invoice import Collection, InvoiceState
from service.domain.status import InvoiceStatus
from service.read.headline import FinanceHeadlines
from service.read.queries import InvoiceQueries
from service.store.views.changes import ProjectedInvoice
from tests.support.projections import project

pytestmark = pytest.mark.anyio
TODAY = date(2026, 3, 20)


def sent(
    number: str,
    *,
    total: str,
    balance: str,
    due: date,
    first_seen: datetime,
    collected: tuple[tuple[datetime, str | None], ...] = (),
    currency: str = "USD",
) -> ProjectedInvoice:
    state = InvoiceState(
        number,
        organization_id="org-a",
        status=InvoiceStatus.PARTIAL if collected else InvoiceStatus.SENT,
        currency=currency,
        total_amount=Decimal(total),
        balance_amount=Decimal(balance),
        due_date=due,
        collections=tuple(
            Collection(moment, None if a is None else Decimal(a)) for moment, a in collected
        ),
        last_event_at=first_seen,
        last_position=1,
    )
    return ProjectedInvoice(state, [state], first_seen)


async def test_the_headline_adds_up_what_is_owed_overdue_collected_and_billed(
    engine: AsyncEngine,
) -> None:
    march, february = datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC)
    await project(
        engine,
        sent("H-1", total="1000.00", balance="600.00", due=date(2026, 3, 1), first_seen=february,
             collected=((february, "300.00"), (march, "100.00"))),
        sent("H-2", total="500.00", balance="500.00", due=date(2026, 4, 30), first_seen=march),
        # Billed long before the 90 days: owed, overdue, but not in DSO's denominator.
        sent("H-3", total="200.00", balance="200.00", due=date(2025, 10, 1),
             first_seen=datetime(2025, 9, 1, tzinfo=UTC)),
        sent("H-4", total="9000", balance="9000", due=date(2026, 3, 1), first_seen=march,
             currency="JPY", collected=((march, None),)),
    )  # fmt: skip
    headlines = FinanceHeadlines(InvoiceQueries(engine), engine)
    jpy, usd = await headlines.per_currency(TODAY)

    assert (usd.currency, usd.open_invoices) == ("USD", 3)
    assert usd.outstanding == Decimal("1300.00")
    assert usd.overdue == Decimal("800.00")  # H-1 and H-3 are past due; H-2 is not yet
    assert (usd.collected_this_month, usd.collected_last_month) == (Decimal(100), Decimal(300))
    assert usd.billed_in_dso_days == Decimal("1500.00")
    assert usd.dso_days == Decimal("78.0")  # 1300 * 90 / 1500
    assert usd.incomplete is False

    assert jpy.outstanding == Decimal(9000) and jpy.overdue == Decimal(9000)
    assert jpy.collected_this_month is None  # a payment of unknown amount: never zero
    assert jpy.incomplete is True


async def test_nothing_billed_in_the_window_leaves_dso_unknown(engine: AsyncEngine) -> None:
    await project(
        engine,
        sent("O-1", total="50", balance="50", due=date(2025, 1, 31),
             first_seen=datetime(2025, 1, 1, tzinfo=UTC)),
    )  # fmt: skip
    [usd] = await FinanceHeadlines(InvoiceQueries(engine), engine).per_currency(TODAY)
    assert usd.outstanding == Decimal(50) and usd.dso_days is None


async def test_open_invoices_owing_nothing_owe_a_known_zero(engine: AsyncEngine) -> None:
    await project(
        engine,
        sent("Z-1", total="50", balance="0", due=date(2026, 4, 1),
             first_seen=datetime(2026, 3, 1, tzinfo=UTC)),
    )  # fmt: skip
    [usd] = await FinanceHeadlines(InvoiceQueries(engine), engine).per_currency(TODAY)
    assert (usd.outstanding, usd.open_invoices, usd.dso_days) == (Decimal(0), 1, Decimal("0.0"))
