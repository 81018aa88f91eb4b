"""The live append on PostgreSQL takes its group as columns, and appends it set-based.

``ledger_append_columns(...)`` (text in ``sql/ledger_append_columns.sql``) answers exactly as
``ledger_append_group(jsonb, bigint, integer)`` did, but receives one array per column
instead of one JSON document, and appends with three statements for the whole group instead
of one INSERT per event: the service no longer encodes a JSON document per group, and
PostgreSQL no longer parses it nor plans a statement per event. ``ledger_append_group``,
which nothing calls any more, is dropped: a service older than this revision cannot append
on a database at it (roll the image out right after migrating, as for 0014).

The least-privileged service role needs EXECUTE on the new function
(deploy/postgres/least-privilege.sql). SQLite needs no change: the store appends in Python.
The downgrade restores ``ledger_append_group`` as 0014 left it.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]
APPEND_COLUMNS_SIGNATURE = (
    "ledger_append_columns(bigint, integer, timestamptz, integer[], text[], text[], smallint[],"
    " timestamptz[], text[], text[], text[], jsonb[], integer[], timestamptz[], text[], text[],"
    " text[], text[], text[], text[], integer[], text[], bytea[], jsonb[], timestamptz[],"
    " text[])"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_append_group(jsonb, bigint, integer)")
        op.execute((MIGRATIONS / "sql" / "ledger_append_columns.sql").read_text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {APPEND_COLUMNS_SIGNATURE}")
        op.execute((MIGRATIONS / "sql" / "ledger_append_group_lock_keys.sql").read_text())
