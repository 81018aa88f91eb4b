"""The merchant an accounting export is for: ``accounting_exports.merchant``.

With several merchants configured, an export may keep to one merchant's organizations; the
column names it (NULL: every merchant, as every export before this revision). A payment is
still posted once across all exports, whichever merchant's export holds it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounting_exports") as table:
        table.add_column(sa.Column("merchant", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounting_exports") as table:
        table.drop_column("merchant")
