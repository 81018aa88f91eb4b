"""Deliveries keep what reading them again needs, and every replay of one is recorded.

The inbox gains ``headers`` (the kept ``V-C-*`` headers and the content type, see
``service.webhooks.envelope.KEPT_HEADERS``) and ``signed_at`` (the verified signature's
time) and ``organization_id`` (the notification's organization, for the delivery log's
filter), so that a delivery replayed later is read exactly as it was on receipt. Rows received
before this migration have neither: a replay reads them with the headers the inbox already
had columns for (event type, webhook id, retry count, trace id) and the time of receipt as
the signature time (see README, "Delivery log, replay and corrections").

``delivery_replays`` records each replay: which delivery, when, by whom, its result and the
event positions it produced or found. The inbox rows themselves are never changed.

On PostgreSQL, where the database still appends through ``ledger_append`` (one delivery per
call), that function is replaced by a version that also stores the new inbox columns; its
text lives in ``sql/`` beside ``versions/``. Where another migration has replaced it, it is
left alone (an append function that takes inbox rows by column name stores them already).

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]
json_document = sa.JSON().with_variant(JSONB(), "postgresql")
position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
utc_datetime = sa.DateTime(timezone=True)
REPLAY_RESULTS = "result IN ('appended', 'duplicate', 'conflict', 'unreadable')"


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("headers", json_document, nullable=True))
        batch.add_column(sa.Column("signed_at", utc_datetime, nullable=True))
        batch.add_column(sa.Column("organization_id", sa.String(200), nullable=True))
        batch.create_index("ix_inbox_organization_id", ["organization_id"])
    op.create_table(
        "delivery_replays",
        sa.Column("id", position, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("replayed_at", utc_datetime, nullable=False),
        sa.Column("replayed_by", sa.String(100), nullable=False),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("positions", json_document, nullable=False),
        sa.CheckConstraint(REPLAY_RESULTS, name="ck_delivery_replays_result"),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_replays"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_replays_delivery_id", "delivery_replays", ["delivery_id"])
    if _appends_one_delivery_per_call():
        op.execute((MIGRATIONS / "sql" / "ledger_append_delivery_context.sql").read_text())


def downgrade() -> None:
    if _appends_one_delivery_per_call():
        op.execute((MIGRATIONS / "sql" / "ledger_append_linear.sql").read_text())
    op.drop_index("ix_delivery_replays_delivery_id", table_name="delivery_replays")
    op.drop_table("delivery_replays")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_index("ix_inbox_organization_id")
        batch.drop_column("organization_id")
        batch.drop_column("signed_at")
        batch.drop_column("headers")


def _appends_one_delivery_per_call() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    found = bind.execute(sa.text("SELECT to_regprocedure('ledger_append(jsonb, jsonb)')"))
    return found.scalar() is not None
