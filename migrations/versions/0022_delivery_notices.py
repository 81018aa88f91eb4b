"""The deliveries a digest told people about: ``delivery_notices``.

The built-in notifier posts a digest of the dead letters and conflicts that wait for an
operator. Once a receiver acknowledges it, each delivery it named gets a row here, and a
delivery is named in a digest only until then: each is told once, whatever order the inbox
rows committed in (a checkpoint on inbox ids would pass over a row whose transaction committed
after a higher id was told). Append-only; the least-privileged service role needs SELECT and
INSERT on it (deploy/postgres/least-privilege.sql).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

utc_datetime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_notices",
        sa.Column("delivery_id", sa.BigInteger(), primary_key=True),
        sa.Column("notified_at", utc_datetime, nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_delivery_notices"),
    )


def downgrade() -> None:
    op.drop_table("delivery_notices")
