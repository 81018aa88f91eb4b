"""Where each stream's fold stands, so the projector folds only what is new.

One row per stream (invoice number): the fold snapshot of each invoice in it and the
projector position it reflects, written in the projector's transaction with its checkpoint.
A projector that finds a stream's snapshot folds the batch's new notifications onto it instead
of re-reading the whole stream; a rebuild empties the table (its snapshots would describe
older positions).

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_fold_snapshots",
        sa.Column("stream_id", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        # JSON, not JSONB: the document is only ever written and read whole.
        sa.Column("snapshot", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("invoice_fold_snapshots")
