"""Personal data that can be forgotten: per-payer data keys, erased customers, redacted bodies.

- ``personal_data_keys``: one AES-256 data key per payer, wrapped by the master key
  (LEDGER_PERSONAL_DATA_KEY). ``payer`` is a keyed hash (HMAC-SHA256) of the payer's
  normalised email, or name without one: the table holds no clear email. ``master_key_id``
  names the master key that wrapped the row (a fingerprint, never the key), so a wrong key is
  told at start-up and a rotation can tell rewrapped rows from the rest.
- ``invoices.customer_erased`` (and its rebuild twin): the payer the invoice's facts named
  was erased. Existing rows are not (false).
- ``inbox.body_redacted_at``: when an erasure replaced a delivery's body with nothing (its
  size, headers and outcome stay). NULL for every existing row.
- The events table still refuses every UPDATE but one: sealing, i.e. replacing a fact's clear
  ``customer`` by its sealed form (``{"payer": …, "sealed": …}``) and its content digest,
  every other column and every other part of ``data`` unchanged. That is how
  ``invoice-ledger personal-data encrypt`` seals the facts recorded before a key was set.
  DELETE and TRUNCATE stay refused.

The downgrade restores the plain triggers and drops the columns and the table (sealed facts
stay sealed: a downgrade must not follow an encryption that it cannot undo).

On PostgreSQL the least-privileged service role needs SELECT, INSERT and DELETE on
``personal_data_keys`` and UPDATE (body, body_redacted_at) on inbox for ``erase``
(deploy/postgres/least-privilege.sql).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

utc_datetime = sa.DateTime(timezone=True)
raw_body = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")

# The columns a sealing leaves as they were (data and content_digest are its to change).
KEPT_COLUMNS = (
    "position", "stream_id", "version", "type", "schema_version", "occurred_at",
    "recorded_at", "source", "idempotency_key",
)  # fmt: skip

POSTGRESQL_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND ({old}) IS NOT DISTINCT FROM ({new})
       AND jsonb_typeof(OLD.data->'customer') = 'object'
       AND NOT (OLD.data->'customer' ? 'sealed')
       AND jsonb_typeof(NEW.data->'customer'->'sealed') = 'string'
       AND (OLD.data - 'customer') = (NEW.data - 'customer')
    THEN
        RETURN NEW;  -- sealing a clear customer: the only change a recorded fact accepts
    END IF;
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
""".format(
    old=", ".join(f"OLD.{column}" for column in KEPT_COLUMNS),
    new=", ".join(f"NEW.{column}" for column in KEPT_COLUMNS),
)

POSTGRESQL_PLAIN_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""

# Every comparison is IS (never =): a NULL (a fact without a customer) must make the condition
# false, not NULL, for a WHEN NOT (NULL) would let the UPDATE through.
SQLITE_SEALING = " AND ".join(
    [
        *(f"old.{column} IS new.{column}" for column in KEPT_COLUMNS),
        "json_type(old.data, '$.customer') IS 'object'",
        "json_type(old.data, '$.customer.sealed') IS NULL",
        "json_type(new.data, '$.customer.sealed') IS 'text'",
        "json_remove(old.data, '$.customer') IS json_remove(new.data, '$.customer')",
    ]
)
SQLITE_REFUSAL = "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END"


def upgrade() -> None:
    op.create_table(
        "personal_data_keys",
        sa.Column("payer", sa.String(64), nullable=False),
        sa.Column("wrapped_key", raw_body, nullable=False),
        sa.Column("master_key_id", sa.String(16), nullable=False),
        sa.Column("created_at", utc_datetime, nullable=False),
        sa.PrimaryKeyConstraint("payer", name="pk_personal_data_keys"),
    )
    for table in ("invoices", "rebuild_invoices"):
        op.add_column(
            table,
            sa.Column("customer_erased", sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    op.add_column("inbox", sa.Column("body_redacted_at", utc_datetime, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_APPEND_ONLY)
    else:
        op.execute("DROP TRIGGER events_refuse_update")
        op.execute(
            "CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events"
            f" WHEN NOT ({SQLITE_SEALING}) {SQLITE_REFUSAL}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_PLAIN_APPEND_ONLY)
    else:
        op.execute("DROP TRIGGER events_refuse_update")
        op.execute(f"CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events {SQLITE_REFUSAL}")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("body_redacted_at")
    for table in ("invoices", "rebuild_invoices"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("customer_erased")
    op.drop_table("personal_data_keys")
