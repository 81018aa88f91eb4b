"""The delivery log found by invoice number: an index on ``inbox.event_position``.

A delivery that produced facts names the first of their positions; the log finds the
deliveries of an invoice through the positions of its stream's events, one index lookup each,
instead of reading the whole inbox.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbox_event_position", "inbox", ["event_position"])


def downgrade() -> None:
    op.drop_index("ix_inbox_event_position", table_name="inbox")
