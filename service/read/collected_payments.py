"""The money collected between two instants, one line per collection: what a bar of the
collections report sums (the same rows, the same bounds), for a person to see behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import OrganizationScope
from service.read.conditions import in_organization
from service.store.errors import unavailability_as_store_error
from service.store.schema import invoice_collections

# A person reads the lines; past this the page says it is cut (the sum is still the bar's).
COLLECTIONS_LISTED_MAX = 1000


@dataclass(frozen=True, slots=True)
class CollectedLines:
    rows: Sequence[Any]  # rows of collected_at, organization, number, sequence, currency, ...
    cut: bool  # more collections than listed


class CollectedPayments:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def between(
        self,
        start: datetime | None,
        end: datetime | None,
        currency: str | None,
        organizations: OrganizationScope = None,
        limit: int = COLLECTIONS_LISTED_MAX,
    ) -> CollectedLines:
        """Collections from ``start`` (inclusive) to ``end`` (exclusive), in ``currency``
        ("" for those of no known currency), oldest first; read by collected_at's index."""
        collected = invoice_collections.c
        query = select(
            collected.collected_at, collected.organization_id, collected.invoice_number,
            collected.sequence, collected.currency, collected.amount, collected.provisional,
        )  # fmt: skip
        if start is not None:
            query = query.where(collected.collected_at >= start)
        if end is not None:
            query = query.where(collected.collected_at < end)
        if currency is not None:
            query = query.where(
                collected.currency.is_(None) if currency == "" else collected.currency == currency
            )
        query = query.where(*in_organization(invoice_collections, organizations))
        query = query.order_by(
            collected.collected_at, collected.organization_id, collected.invoice_number,
            collected.sequence,
        ).limit(limit + 1)  # fmt: skip
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return CollectedLines(rows[:limit], cut=len(rows) > limit)


def known_sum(rows: Sequence[Any]) -> tuple[Decimal | None, bool]:
    """The sum of the known amounts (None when none is), and whether one is unknown."""
    known = [row.amount for row in rows if row.amount is not None]
    return (sum(known, Decimal(0)) if known else None), len(known) < len(rows)
