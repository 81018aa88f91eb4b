"""Console sessions: a sign-in is a row here, and the browser's cookie holds only its id.

``console_sessions`` keeps, per session, the SHA-256 of its id (never the id), the name and
scope of the token it was opened with (never the token), when it was opened, when it expires
and when it was signed out of. ``ix_console_sessions_expires_at`` finds the expired rows to
delete. Sessions opened before this revision do not exist (the console's cookie held the
token itself): everyone signs in again once. The downgrade drops the table.

On PostgreSQL the least-privileged service role needs SELECT, INSERT, UPDATE (revoked_at)
and DELETE on it (deploy/postgres/least-privilege.sql).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

utc_datetime = sa.DateTime(timezone=True)
SCOPES = "scope IN ('read', 'operator')"


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_digest", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("created_at", utc_datetime, nullable=False),
        sa.Column("expires_at", utc_datetime, nullable=False),
        sa.Column("revoked_at", utc_datetime, nullable=True),
        sa.CheckConstraint(SCOPES, name="ck_console_sessions_scope"),
        sa.PrimaryKeyConstraint("id_digest", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
