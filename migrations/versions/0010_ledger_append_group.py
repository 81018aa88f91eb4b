"""Group commit: several deliveries appended in one call and one commit on PostgreSQL.

``ledger_append_group(deliveries jsonb)`` (text in ``sql/``) handles each delivery exactly as
``ledger_append`` does, in order, in one transaction, and notifies the ``ledger_events``
channel once for the whole group: with one NOTIFY per delivery, PostgreSQL's commit-time
notification lock made every append commit one at a time. ``ledger_append`` stays (a
downgrade and any older service still call it). SQLite needs no schema change: the store
appends a group in one BEGIN IMMEDIATE transaction.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute((MIGRATIONS / "sql" / "ledger_append_group.sql").read_text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_group(jsonb)")
