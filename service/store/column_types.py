"""The column types of the schema (schema.py): instants kept in UTC, exact amounts, and the
variants each engine needs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, Rounded
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    LargeBinary,
    Numeric,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.types import TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware UTC out, on every engine (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL positions need 64 bits.
Position = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
RawBody = LargeBinary().with_variant(BYTEA(), "postgresql")


AMOUNT_DIGITS = 38
AMOUNT_DECIMALS = 6
_AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_DECIMALS)
_AMOUNT_CONTEXT = Context(prec=AMOUNT_DIGITS)
# Adds stored amounts exactly: rounding raises rather than change a sum.
EXACT_SUM = Context(prec=AMOUNT_DIGITS + 2, traps=[Inexact, Rounded])


class ExactAmount(TypeDecorator[Decimal]):
    """An exact, non-negative amount with up to six decimals, as a Decimal on every engine.

    PostgreSQL stores NUMERIC(38, 6) and sums it exactly. SQLite has no exact decimal type
    (its NUMERIC goes through float), so there the amount is text of a fixed width, zero
    padded: text order is then numeric order, and comparisons in SQL stay exact. SQLite
    never sums this text (it would do so in floating point); sums are made in Python there.
    """

    impl = Numeric(AMOUNT_DIGITS, AMOUNT_DECIMALS, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(AMOUNT_DIGITS, AMOUNT_DECIMALS, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = _exact_amount(value)
        return _sortable_text(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value)  # text on SQLite, already a Decimal on PostgreSQL

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


def _exact_amount(value: Decimal) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"refusing to store {value!r} as an amount: not a finite Decimal")
    if value < 0:
        raise ValueError(f"refusing to store the negative amount {value}")
    if value.adjusted() >= AMOUNT_DIGITS - AMOUNT_DECIMALS:
        raise ValueError(f"refusing to store {value}: over {AMOUNT_DIGITS} digits")
    exact = value.quantize(_AMOUNT_QUANTUM, context=_AMOUNT_CONTEXT)
    if exact != value:
        raise ValueError(f"refusing to store {value}: more than {AMOUNT_DECIMALS} decimals")
    return exact


def _sortable_text(amount: Decimal) -> str:
    width = AMOUNT_DIGITS + 1  # every digit and the decimal point
    return format(amount, f"0{width}.{AMOUNT_DECIMALS}f")


def sqlite_amount_text(amount: Decimal) -> str:
    """An amount as SQLite stores it (``ExactAmount``): fixed-width, zero-padded text."""
    return _sortable_text(_exact_amount(amount))


def sqlite_amount_sum(stored: str, change: str) -> str:
    """A stored amount plus a signed change, exactly, in the form SQLite stores amounts.

    Registered as the SQL function ``ledger_amount_sum`` on every SQLite connection
    (database.py), so a sum kept in SQL never goes through floating point. A result below zero
    comes back as its magnitude's text after a minus sign, which sorts before every amount:
    the caller compares it with zero's text and refuses it (raising here would reach the
    caller as a driver error that reads like an unavailable database).
    """
    total = EXACT_SUM.add(Decimal(stored), Decimal(change))
    return f"-{sqlite_amount_text(-total)}" if total < 0 else sqlite_amount_text(total)
