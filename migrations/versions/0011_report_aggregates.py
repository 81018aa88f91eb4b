"""Report aggregates: open balances and collections per day, kept by the projector.

``report_open_balance_changes`` (per organization, currency, due day and UTC day: the open
states that began and ended that day) and ``report_daily_collections`` (per organization,
currency and UTC day) let the aging, outstanding and collections reports sum a small table
instead of the state history; ``invoice_versions`` gains an index on ``valid_to`` for the
one partial day a report as of an instant reads exactly. Both tables are filled here from the
read rows already projected, as a rebuild's ``report_aggregates.recount`` filled them at this
revision (the statements are frozen here, so that later columns do not change what it does).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from __future__ import annotations

import decimal
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

exact_amount = sa.Numeric(38, 6).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "report_open_balance_changes",
        sa.Column("organization_id", sa.String(200), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("due_day", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Integer(), primary_key=True),
        sa.Column("opened", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.BigInteger(), nullable=False),
        sa.Column("opened_without_balance", sa.BigInteger(), nullable=False),
        sa.Column("closed_without_balance", sa.BigInteger(), nullable=False),
        sa.Column("balance_opened", exact_amount, nullable=False),
        sa.Column("balance_closed", exact_amount, nullable=False),
    )
    op.create_index("ix_report_open_balance_changes_day", "report_open_balance_changes", ["day"])
    op.create_table(
        "report_open_balance_totals",
        sa.Column("organization_id", sa.String(200), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("due_day", sa.Integer(), primary_key=True),
        sa.Column("opened", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.BigInteger(), nullable=False),
        sa.Column("opened_without_balance", sa.BigInteger(), nullable=False),
        sa.Column("closed_without_balance", sa.BigInteger(), nullable=False),
        sa.Column("balance_opened", exact_amount, nullable=False),
        sa.Column("balance_closed", exact_amount, nullable=False),
    )
    op.create_table(
        "report_daily_collections",
        sa.Column("organization_id", sa.String(200), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.Integer(), primary_key=True),
        sa.Column("collections", sa.BigInteger(), nullable=False),
        sa.Column("without_amount", sa.BigInteger(), nullable=False),
        sa.Column("amount", exact_amount, nullable=False),
    )
    op.create_index("ix_report_daily_collections_day", "report_daily_collections", ["day"])
    op.create_index("ix_invoice_versions_valid_to", "invoice_versions", ["valid_to"])
    _fill(op.get_bind())


def _fill(connection: sa.engine.Connection) -> None:
    """The aggregates of the rows already projected, as a rebuild's recount made them at this
    revision (frozen here: the service's recount follows the schema of its own day)."""
    if connection.dialect.name == "postgresql":
        for statement in _RECOUNT_IN_SQL:
            connection.execute(sa.text(statement))
        return
    _fill_in_python(connection)


OPEN_STATUSES = "'CREATED', 'PARTIAL', 'PENDING', 'SENT'"
_DAY_IN_SQL = "(({instant} AT TIME ZONE 'UTC')::date - DATE '0001-01-01' + 1)"  # toordinal()
_RECOUNT_IN_SQL = (
    f"""
    INSERT INTO report_open_balance_changes
        (organization_id, currency, due_day, day, opened, closed, opened_without_balance,
         closed_without_balance, balance_opened, balance_closed)
    SELECT organization_id, currency, due_day, day, sum(opened), sum(closed), sum(unknown_opened),
           sum(unknown_closed), sum(balance_opened), sum(balance_closed)
    FROM (
        SELECT organization_id, coalesce(currency, '') AS currency,
               coalesce(due_date - DATE '0001-01-01' + 1, 0) AS due_day,
               {_DAY_IN_SQL.format(instant="valid_from")} AS day,
               1 AS opened, 0 AS closed, (balance_amount IS NULL)::int AS unknown_opened,
               0 AS unknown_closed, coalesce(balance_amount, 0) AS balance_opened,
               0 AS balance_closed
        FROM invoice_versions WHERE status IN ({OPEN_STATUSES})
        UNION ALL
        SELECT organization_id, coalesce(currency, ''),
               coalesce(due_date - DATE '0001-01-01' + 1, 0),
               {_DAY_IN_SQL.format(instant="valid_to")},
               0, 1, 0, (balance_amount IS NULL)::int, 0, coalesce(balance_amount, 0)
        FROM invoice_versions WHERE status IN ({OPEN_STATUSES}) AND valid_to IS NOT NULL
    ) AS changes
    GROUP BY organization_id, currency, due_day, day
    """,
    """
    INSERT INTO report_open_balance_totals
        (organization_id, currency, due_day, opened, closed, opened_without_balance,
         closed_without_balance, balance_opened, balance_closed)
    SELECT organization_id, currency, due_day, sum(opened), sum(closed),
           sum(opened_without_balance), sum(closed_without_balance), sum(balance_opened),
           sum(balance_closed)
    FROM report_open_balance_changes
    GROUP BY organization_id, currency, due_day
    """,
    f"""
    INSERT INTO report_daily_collections
        (organization_id, currency, day, collections, without_amount, amount)
    SELECT organization_id, coalesce(currency, ''), {_DAY_IN_SQL.format(instant="collected_at")},
           count(*), count(*) - count(amount), coalesce(sum(amount), 0)
    FROM invoice_collections
    GROUP BY 1, 2, 3
    """,
)
# SQLite keeps amounts as fixed-width text and would sum them in floating point: there they
# are read and added up here, exactly, and written back as that text. Its instants are text
# that begins with their UTC day.
_SQLITE_OPEN_VERSIONS = f"""
    SELECT organization_id, coalesce(currency, '') AS currency, due_date,
           substr(valid_from, 1, 10) AS opened_on, substr(valid_to, 1, 10) AS closed_on,
           balance_amount
    FROM invoice_versions WHERE status IN ({OPEN_STATUSES})
"""
_SQLITE_COLLECTIONS = """
    SELECT organization_id, coalesce(currency, '') AS currency,
           substr(collected_at, 1, 10) AS collected_on, amount
    FROM invoice_collections
"""
_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.Rounded])


def _fill_in_python(connection: sa.engine.Connection) -> None:
    balances: dict[tuple[str, str, int, int], list[Any]] = {}
    for row in connection.execute(sa.text(_SQLITE_OPEN_VERSIONS)):
        due_day = date.fromisoformat(row.due_date).toordinal() if row.due_date else 0
        for day_text, closing in ((row.opened_on, False), (row.closed_on, True)):
            if day_text is None:
                continue
            key = (row.organization_id, row.currency, due_day, _day(day_text))
            # opened, closed, opened without balance, closed without balance, the two sums
            figures = balances.setdefault(key, [0, 0, 0, 0, _ZERO, _ZERO])
            at = 1 if closing else 0
            figures[at] += 1
            if row.balance_amount is None:
                figures[2 + at] += 1
            else:
                figures[4 + at] = _EXACT.add(figures[4 + at], decimal.Decimal(row.balance_amount))
    totals: dict[tuple[str, str, int], list[Any]] = {}
    for (organization, currency, due_day, _), figures in balances.items():
        summed = totals.setdefault((organization, currency, due_day), [0, 0, 0, 0, _ZERO, _ZERO])
        for at, value in enumerate(figures):
            summed[at] = _EXACT.add(summed[at], value) if at >= 4 else summed[at] + value
    collections: dict[tuple[str, str, int], list[Any]] = {}
    for row in connection.execute(sa.text(_SQLITE_COLLECTIONS)):
        day = (row.organization_id, row.currency, _day(row.collected_on))
        collected = collections.setdefault(day, [0, 0, _ZERO])
        collected[0] += 1
        if row.amount is None:
            collected[1] += 1
        else:
            collected[2] = _EXACT.add(collected[2], decimal.Decimal(row.amount))
    balance_names = ("opened", "closed", "opened_without_balance", "closed_without_balance",
                     "balance_opened", "balance_closed")  # fmt: skip
    for table, key_names, names, found in (
        ("report_open_balance_changes", ("organization_id", "currency", "due_day", "day"),
         balance_names, balances),
        ("report_open_balance_totals", ("organization_id", "currency", "due_day"),
         balance_names, totals),
        ("report_daily_collections", ("organization_id", "currency", "day"),
         ("collections", "without_amount", "amount"), collections),
    ):  # fmt: skip
        columns = (*key_names, *names)
        statement = sa.text(
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join(':' + name for name in columns)})"
        )
        rows = [
            dict(zip(columns, (*key, *(_stored(value) for value in figures)), strict=True))
            for key, figures in sorted(found.items())
        ]
        if rows:
            connection.execute(statement, rows)


_ZERO = decimal.Decimal(0)


def _day(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def _stored(value: Any) -> Any:
    """An amount as SQLite keeps it: zero-padded text of a fixed width (counts as they are)."""
    if isinstance(value, decimal.Decimal):
        return format(value.quantize(decimal.Decimal("0.000001")), "039.6f")
    return value


def downgrade() -> None:
    op.drop_index("ix_invoice_versions_valid_to", "invoice_versions")
    op.drop_table("report_daily_collections")
    op.drop_table("report_open_balance_totals")
    op.drop_table("report_open_balance_changes")
