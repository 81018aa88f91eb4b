"""One live append function on PostgreSQL, and the service names its lock keys.

``ledger_append_group(deliveries jsonb, append_lock_key bigint, stream_lock_class integer)``
(text in ``sql/ledger_append_group_lock_keys.sql``) appends exactly as the one-argument
function of 0010 did, but takes the advisory lock keys from its caller, so the service's
constants are their only source rather than a literal in the SQL. The one-argument
``ledger_append_group(jsonb)`` and ``ledger_append(jsonb, jsonb)``, which nothing calls any
more, are dropped. A service older than this revision cannot append on a database at it.

The least-privileged service role needs EXECUTE on the new signature
(deploy/postgres/least-privilege.sql). SQLite needs no change: the store appends in Python.
The downgrade restores both functions as 0013 left them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_append(jsonb, jsonb)")
        op.execute("DROP FUNCTION ledger_append_group(jsonb)")
        op.execute((MIGRATIONS / "sql" / "ledger_append_group_lock_keys.sql").read_text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_append_group(jsonb, bigint, integer)")
        op.execute((MIGRATIONS / "sql" / "ledger_append_delivery_context.sql").read_text())
        op.execute((MIGRATIONS / "sql" / "ledger_append_group.sql").read_text())
