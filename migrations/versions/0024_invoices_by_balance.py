"""The invoice list sorted by balance: an index on (balance_amount, updated_at,
organization_id, invoice_number).

The console pages through invoices by balance, either way, with keyset cursors; the index
holds that order, so a page is one range of it, whatever the number of invoices (the due date
order already has ``ix_invoices_list_by_due_date``).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_invoices_list_by_balance_amount",
        "invoices",
        ["balance_amount", "updated_at", "organization_id", "invoice_number"],
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_list_by_balance_amount", table_name="invoices")
