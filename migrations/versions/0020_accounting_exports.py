"""Accounting exports: ``accounting_exports`` and ``accounting_export_lines``.

An export of the payments journal or of the open invoices, recorded with who made it, when,
its period and a digest of its lines; its lines name each payment by its stable identity
(organization, invoice number, collection sequence) and the ledger position it reflects, so
a payment is posted once and a correction is a reversing line and a new one. Both tables are
append-only: on PostgreSQL the least-privileged service role gets SELECT and INSERT only
(deploy/postgres/least-privilege.sql).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
utc_datetime = sa.DateTime(timezone=True)
exact_amount = sa.Numeric(38, 6).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounting_exports",
        sa.Column("id", position, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("created_at", utc_datetime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounting_exports"),
        sa.CheckConstraint(
            "kind IN ('payments', 'receivables')", name="ck_accounting_exports_kind"
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "accounting_export_lines",
        sa.Column("export_id", position, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("organization_id", sa.String(200), nullable=False),
        sa.Column("invoice_number", sa.String(200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("occurred_at", utc_datetime, nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", exact_amount, nullable=False),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("position", position, nullable=False),
        sa.PrimaryKeyConstraint("export_id", "line", name="pk_accounting_export_lines"),
        sa.CheckConstraint(
            "kind IN ('payment', 'reversal', 'receivable')",
            name="ck_accounting_export_lines_kind",
        ),
    )
    op.create_index(
        "ix_accounting_export_lines_identity",
        "accounting_export_lines",
        ["organization_id", "invoice_number", "sequence"],
    )


def downgrade() -> None:
    op.drop_table("accounting_export_lines")
    op.drop_table("accounting_exports")
