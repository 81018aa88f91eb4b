"""Changes added to a table of sums in SQL stay exact, leave no row that came to nothing, and
never take a sum below zero, on both engines."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.schema import report_daily_collections
from service.store.views.summed_changes import SumBelowZero, add_changes

pytestmark = pytest.mark.anyio
KEY = ("organization_id", "currency", "day")


def change(day: int, collections: int, amount: str, provisional: str = "0") -> dict[str, Any]:
    return {
        "organization_id": "org-a",
        "currency": "USD",
        "day": day,
        "collections": collections,
        "without_amount": 0,
        "amount": Decimal(amount),
        "provisional_amount": Decimal(provisional),
    }


async def stored(engine: AsyncEngine) -> dict[int, tuple[int, Decimal, Decimal]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(report_daily_collections))
        return {row.day: (row.collections, row.amount, row.provisional_amount) for row in rows}


async def add(engine: AsyncEngine, *changes: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await add_changes(connection, report_daily_collections, KEY, changes)


async def test_changes_add_up_exactly_where_floating_point_would_not(engine: AsyncEngine) -> None:
    big = "12345678901234567890123456789012.000001"
    await add(engine, change(1, 1, "0.1"), change(2, 1, big, big))
    await add(engine, change(1, 1, "0.2", "0.2"), change(2, 1, "0.000001"))
    await add(engine, change(1, -1, "-0.1"))

    assert await stored(engine) == {
        1: (1, Decimal("0.2"), Decimal("0.2")),
        2: (2, Decimal("12345678901234567890123456789012.000002"), Decimal(big)),
    }


async def test_a_row_that_comes_to_nothing_is_deleted_and_others_stay(
    engine: AsyncEngine,
) -> None:
    await add(engine, change(1, 2, "10.50"), change(2, 1, "3"))
    await add(engine, change(1, -2, "-10.50"), change(2, -1, "-1"))

    assert await stored(engine) == {2: (0, Decimal(2), Decimal(0))}


async def test_a_change_of_nothing_writes_no_row(engine: AsyncEngine) -> None:
    await add(engine, change(1, 0, "0"))

    assert await stored(engine) == {}


@pytest.mark.parametrize(
    "taken_away",
    [change(1, -2, "-1"), change(1, -1, "-5.000001"), change(2, -1, "-1")],
    ids=["a count", "an amount", "a row that is not there"],
)
async def test_a_change_that_would_take_a_sum_below_zero_is_refused(
    engine: AsyncEngine, taken_away: dict[str, Any]
) -> None:
    await add(engine, change(1, 1, "5"))

    with pytest.raises(SumBelowZero):
        await add(engine, change(3, 1, "1"), taken_away)

    assert await stored(engine) == {1: (1, Decimal(5), Decimal(0))}
