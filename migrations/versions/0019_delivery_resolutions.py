"""Deliveries an operator has resolved: ``delivery_resolutions``.

A dead letter or a conflict waits for an operator until it is replayed into facts, corrected,
or resolved: an operator's recorded word, with a reason, that it needs nothing more. One row
per resolved delivery (unique), never updated or deleted; the inbox row is unchanged.

On PostgreSQL the least-privileged service role needs SELECT and INSERT on the table
(deploy/postgres/least-privilege.sql).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
utc_datetime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_resolutions",
        sa.Column("id", position, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", utc_datetime, nullable=False),
        sa.Column("resolved_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_resolutions"),
        sa.UniqueConstraint("delivery_id", name="uq_delivery_resolutions_delivery_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("delivery_resolutions")
