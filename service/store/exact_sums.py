"""Exact sums of amounts by group, on either engine, saying how much of each sum is known.

Unknown is never zero: a sum covers the known amounts only and comes with the number of rows
it covered and how many of them lacked the amount, so a report can say it is incomplete, and
a sum over rows none of which is known is None rather than 0. Each sum also says how much of
it is provisional (amounts inferred from notifications alone, not yet confirmed).

PostgreSQL sums NUMERIC exactly in SQL. SQLite keeps amounts as text and would sum them in
floating point, so there the rows are read and summed here, in Python, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, Rounded
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

# For adding sums: precise far beyond any sum of NUMERIC(38, 6) amounts, and should that ever
# be exceeded, rounding raises instead of silently changing a sum.
EXACT = Context(prec=200, traps=[Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class Summed:
    """What to sum: ``amount`` over the rows where ``counted`` holds (every row when None);
    the amounts of the rows where ``provisional`` holds are the sum's provisional part."""

    amount: ColumnElement[Any]
    counted: ColumnElement[bool] | None = None
    provisional: ColumnElement[bool] | None = None


@dataclass(frozen=True, slots=True)
class PartialSum:
    """A sum of the known amounts over ``rows`` rows, ``unknown`` of which lacked one;
    ``provisional`` is the part of ``known`` that is provisional."""

    rows: int = 0
    unknown: int = 0
    known: Decimal = Decimal(0)
    provisional: Decimal = Decimal(0)

    @property
    def amount(self) -> Decimal | None:
        """The sum; None when there were rows and not one amount among them was known.

        Over no rows at all the sum is a known zero (an empty aging bucket owes nothing).
        """
        return None if self.rows and self.unknown == self.rows else self.known

    @property
    def provisional_amount(self) -> Decimal | None:
        """The provisional part of ``amount``: None only where ``amount`` is."""
        return None if self.amount is None else self.provisional

    @property
    def incomplete(self) -> bool:
        return self.unknown > 0

    def __add__(self, other: PartialSum) -> PartialSum:
        return PartialSum(
            self.rows + other.rows,
            self.unknown + other.unknown,
            EXACT.add(self.known, other.known),
            EXACT.add(self.provisional, other.provisional),
        )

    def including(self, amount: Decimal | None, provisional: bool = False) -> PartialSum:
        if amount is None:
            return PartialSum(self.rows + 1, self.unknown + 1, self.known, self.provisional)
        return PartialSum(
            self.rows + 1,
            self.unknown,
            EXACT.add(self.known, amount),
            EXACT.add(self.provisional, amount) if provisional else self.provisional,
        )


@dataclass(frozen=True, slots=True)
class GroupSums:
    key: tuple[Any, ...]
    rows: int
    sums: Mapping[str, PartialSum]

    @property
    def incomplete(self) -> bool:
        return any(partial.incomplete for partial in self.sums.values())


async def grouped_sums(
    connection: AsyncConnection,
    source: FromClause,
    keys: Sequence[ColumnElement[Any]],
    sums: Mapping[str, Summed],
    where: Sequence[ColumnElement[bool]] = (),
) -> list[GroupSums]:
    """Per distinct value of ``keys`` among the rows of ``source`` meeting ``where``: the row
    count and each of ``sums``. Groups come in no particular order."""
    if connection.dialect.name == "postgresql":
        return await _summed_in_sql(connection, source, keys, sums, where)
    return await _summed_in_python(connection, source, keys, sums, where)


async def _summed_in_sql(
    connection: AsyncConnection,
    source: FromClause,
    keys: Sequence[ColumnElement[Any]],
    sums: Mapping[str, Summed],
    where: Sequence[ColumnElement[bool]],
) -> list[GroupSums]:
    columns: list[ColumnElement[Any]] = [func.count()]
    for summed in sums.values():
        counted = summed.counted if summed.counted is not None else literal(True)
        provisional = summed.provisional if summed.provisional is not None else literal(False)
        columns += [
            func.count(case((counted, 1))),
            func.count(case((and_(counted, summed.amount.is_(None)), 1))),
            func.sum(case((counted, summed.amount))),
            func.sum(case((and_(counted, provisional), summed.amount))),
        ]
    query = select(*keys, *columns).select_from(source).where(*where).group_by(*keys)
    groups = []
    for row in await connection.execute(query):
        key, (rows, *figures) = tuple(row[: len(keys)]), row[len(keys) :]
        partials = {
            name: PartialSum(
                int(figures[4 * at]),
                int(figures[4 * at + 1]),
                figures[4 * at + 2] or Decimal(0),
                figures[4 * at + 3] or Decimal(0),
            )
            for at, name in enumerate(sums)
        }
        groups.append(GroupSums(key, int(rows), partials))
    return groups


async def _summed_in_python(
    connection: AsyncConnection,
    source: FromClause,
    keys: Sequence[ColumnElement[Any]],
    sums: Mapping[str, Summed],
    where: Sequence[ColumnElement[bool]],
) -> list[GroupSums]:
    columns: list[ColumnElement[Any]] = []
    for summed in sums.values():
        counted = literal(1) if summed.counted is None else case((summed.counted, 1), else_=0)
        provisional = (
            literal(0) if summed.provisional is None else case((summed.provisional, 1), else_=0)
        )
        columns += [counted, summed.amount, provisional]
    query = select(*keys, *columns).select_from(source).where(*where)
    rows: dict[tuple[Any, ...], int] = {}
    partials: dict[tuple[Any, ...], dict[str, PartialSum]] = {}
    async with connection.stream(query) as result:
        async for row in result:
            key = tuple(row[: len(keys)])
            rows[key] = rows.get(key, 0) + 1
            group = partials.setdefault(key, dict.fromkeys(sums, PartialSum()))
            for at, name in enumerate(sums):
                counted, amount, provisional = row[len(keys) + 3 * at : len(keys) + 3 * at + 3]
                if counted:
                    group[name] = group[name].including(amount, bool(provisional))
    return [GroupSums(key, rows[key], partials[key]) for key in rows]
