"""Report aggregates: open balances and collections per day, kept by the projector.

``report_open_balance_changes`` (per organization, currency, due day and UTC day: the open
states that began and ended that day) and ``report_daily_collections`` (per organization,
currency and UTC day) let the aging, outstanding and collections reports sum a small table
instead of the state history; ``invoice_versions`` gains an index on ``valid_to`` for the
one partial day a report as of an instant reads exactly. Both tables are filled here from the
read rows already projected, as a rebuild fills them (``report_aggregates.recount``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from __future__ import annotations

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
    """The aggregates of the rows already projected, by the code a rebuild's recount uses."""
    from service.store.report_aggregates import recount_sync

    recount_sync(connection)


def downgrade() -> None:
    op.drop_index("ix_invoice_versions_valid_to", "invoice_versions")
    op.drop_table("report_daily_collections")
    op.drop_table("report_open_balance_totals")
    op.drop_table("report_open_balance_changes")
