"""A rebuild swaps its tables in by renaming them (PostgreSQL).

``ledger_rebuild_tables`` (text in ``sql/``) takes the rebuild tables' indexes away while a
rebuild loads them, builds the live tables' indexes on them once the rows are in, and
exchanges each live table with its twin by renaming, with the owner's rights: the service's
role, which runs rebuilds, owns no table (see deploy/postgres/least-privilege.sql). Before
this, the swap copied every rebuilt row into the indexed live tables while readers waited.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute((MIGRATIONS / "sql" / "ledger_rebuild_tables.sql").read_text())
        # Functions are executable by PUBLIC by default; only granted roles may rebuild.
        op.execute("REVOKE ALL ON FUNCTION ledger_rebuild_tables(text) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Rebuild tables indexed by a rebuild that never swapped them in are left as the
        # earlier revisions have them, with their primary keys only: nothing before this one
        # would take those indexes away.
        op.execute("SELECT ledger_rebuild_tables('unindex')")
        op.execute("DROP FUNCTION ledger_rebuild_tables(text)")
