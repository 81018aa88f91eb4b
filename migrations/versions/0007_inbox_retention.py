"""Inbox retention: an index to find expired rows by kind and age, and the pruning function.

``ix_inbox_outcome_received_at`` lets retention find the oldest rows of one outcome without
reading the inbox, and lets the inbox gauge count rows by outcome from the index. On
PostgreSQL, ``ledger_prune_inbox`` (text in ``sql/``) deletes expired rows with the owner's
rights, so the service's role needs no DELETE on the inbox (see
deploy/postgres/least-privilege.sql).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]


def upgrade() -> None:
    op.create_index("ix_inbox_outcome_received_at", "inbox", ["outcome", "received_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute((MIGRATIONS / "sql" / "ledger_prune_inbox.sql").read_text())
        # Functions are executable by PUBLIC by default; only granted roles may prune.
        op.execute(
            "REVOKE ALL ON FUNCTION ledger_prune_inbox(text, timestamptz, integer) FROM PUBLIC"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_prune_inbox(text, timestamptz, integer)")
    op.drop_index("ix_inbox_outcome_received_at", table_name="inbox")
