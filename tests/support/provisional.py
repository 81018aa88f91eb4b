"""Invoices with provisional figures, as the projector writes them, for tests that feed the read
model store directly (the fold does not label any figure provisional on its own yet)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from service.domain.invoice import Collection, InvoiceState, Payment
from service.domain.status import InvoiceStatus
from service.store.views.changes import ProjectedInvoice
from service.store.views.read_model_store import SqlReadModelStore

MOMENT = datetime(2026, 3, 1, 12, tzinfo=UTC)
DUE = date(2026, 3, 31)


def paid_once(
    number: str,
    *,
    total: str,
    balance: str,
    provisional: bool,
    organization: str = "org-a",
    currency: str = "USD",
    customer_name: str | None = None,
) -> ProjectedInvoice:
    """An invoice sent and then paid once (total less balance, at ``MOMENT``): every figure
    inferred from notifications alone when ``provisional``, else confirmed."""
    paid = Decimal(total) - Decimal(balance)
    state = InvoiceState(
        number,
        organization_id=organization,
        status=InvoiceStatus.PARTIAL,
        currency=currency,
        total_amount=Decimal(total),
        balance_amount=Decimal(balance),
        due_date=DUE,
        customer_name=customer_name,
        payments=(Payment(None if provisional else f"tx-{number}", paid, MOMENT),),
        collections=(Collection(MOMENT, paid, provisional=provisional),),
        last_event_at=MOMENT,
        last_position=1,
        total_provisional=provisional,
        balance_provisional=provisional,
    )
    return ProjectedInvoice(state, [state], MOMENT)


def sent(number: str, *, total: str, provisional: bool, currency: str = "USD") -> ProjectedInvoice:
    """An invoice sent and not paid: its balance is its total."""
    state = InvoiceState(
        number,
        organization_id="org-a",
        status=InvoiceStatus.SENT,
        currency=currency,
        total_amount=Decimal(total),
        balance_amount=Decimal(total),
        due_date=DUE,
        last_event_at=MOMENT,
        last_position=1,
        total_provisional=provisional,
        balance_provisional=provisional,
    )
    return ProjectedInvoice(state, [state], MOMENT)


def confirmed(projected: ProjectedInvoice, at: datetime) -> ProjectedInvoice:
    """The same invoice once Cybersource's answer at ``at`` confirmed every figure: a new state
    follows the provisional one, which stays in the history as it was."""
    before = projected.state
    state = replace(
        before,
        collections=tuple(replace(c, provisional=False) for c in before.collections),
        last_event_at=at,
        last_position=before.last_position + 1,
        total_provisional=False,
        balance_provisional=False,
    )
    return ProjectedInvoice(state, [*projected.history, state], at)


async def project(engine_store: SqlReadModelStore, projected: Sequence[ProjectedInvoice]) -> None:
    """Write ``projected`` as one projector batch (taking the lease as "test")."""
    assert await engine_store.acquire_lease("test", 60)
    position = await engine_store.checkpoint()
    await engine_store.apply(
        projected, owner="test", from_position=position, to_position=position + 1
    )
