"""Provisional amounts: figures inferred from notifications alone, labelled in every read model.

The invoice rows and state rows (and their rebuild twins) say whether their total and their
balance are provisional (``total_provisional``, ``balance_provisional``); a collection says
whether its amount is (``provisional``). ``invoice_totals`` keeps the provisional part of its
sums of totals and balances, the open-balance aggregates the provisional part of the balances
opened and closed, and the daily collections the provisional part of the amount collected.

Until this revision no figure was labelled provisional, so existing rows are not provisional
and their provisional parts are zero: the columns are added with those values and then lose
their defaults (the projector writes every column). PostgreSQL does both in place; SQLite adds
in place and copies each table once to drop the default. The downgrade drops the columns.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FLAGS = {
    "invoices": ("total_provisional", "balance_provisional"),
    "rebuild_invoices": ("total_provisional", "balance_provisional"),
    "invoice_versions": ("total_provisional", "balance_provisional"),
    "rebuild_invoice_versions": ("total_provisional", "balance_provisional"),
    "invoice_collections": ("provisional",),
    "rebuild_invoice_collections": ("provisional",),
}
AMOUNTS = {
    "invoice_totals": ("provisional_total_amount", "provisional_balance_amount"),
    "report_open_balance_changes": ("provisional_balance_opened", "provisional_balance_closed"),
    "report_open_balance_totals": ("provisional_balance_opened", "provisional_balance_closed"),
    "report_daily_collections": ("provisional_amount",),
}
# Per engine: the type and the value existing rows take. SQLite keeps an exact amount as text
# zero-padded to 39 characters (service.store.schema.ExactAmount).
POSTGRESQL = {"flag": ("boolean", "false"), "amount": ("numeric(38, 6)", "0")}
SQLITE = {"flag": ("BOOLEAN", "0"), "amount": ("TEXT", f"'{format(0, '039.6f')}'")}
SQLITE_TYPES: dict[str, sa.types.TypeEngine[Any]] = {"flag": sa.Boolean(), "amount": sa.Text()}


def _columns() -> list[tuple[str, str, str]]:
    """(table, column, kind) of every column this revision adds."""
    return [
        (table, column, kind)
        for kind, columns in (("flag", FLAGS), ("amount", AMOUNTS))
        for table, names in columns.items()
        for column in names
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, kind in _columns():
            sql_type, existing = POSTGRESQL[kind]
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN {column} {sql_type} NOT NULL DEFAULT {existing}"
            )
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
        return
    for table, column, kind in _columns():
        sql_type, existing = SQLITE[kind]
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} {sql_type} NOT NULL DEFAULT {existing}"
        )
    for table in (*FLAGS, *AMOUNTS):
        kind = "flag" if table in FLAGS else "amount"
        names = FLAGS.get(table) or AMOUNTS[table]
        with op.batch_alter_table(table, recreate="always") as batch:
            for column in names:
                batch.alter_column(
                    column, existing_type=SQLITE_TYPES[kind], existing_nullable=False,
                    server_default=None,
                )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, _ in _columns():
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    for table in (*FLAGS, *AMOUNTS):
        with op.batch_alter_table(table) as batch:
            for column in FLAGS.get(table) or AMOUNTS[table]:
                batch.drop_column(column)
