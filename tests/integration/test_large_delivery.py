"""One delivery naming thousands of invoices is appended whole, each fact once."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.events.base import AppendOutcome
from service.store.events.for_engine import event_store_for
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio

INVOICES = 3000


async def test_a_delivery_of_thousands_of_facts_is_appended_in_order_and_once(
    engine: AsyncEngine,
) -> None:
    store = event_store_for(engine)
    facts = [invoice_event(f"BULK-{index}", f"bulk-{index}") for index in range(INVOICES)]
    first = await store.append(facts)
    assert {result.outcome for result in first} == {AppendOutcome.APPENDED}
    positions = [result.position for result in first]
    assert positions == sorted(positions) and len(set(positions)) == INVOICES
    again = await store.append(facts)
    assert [(r.outcome, r.position) for r in again] == [
        (AppendOutcome.DUPLICATE, position) for position in positions
    ]
