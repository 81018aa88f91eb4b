"""Event store and delivery inbox; the database refuses changes to recorded events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
json_document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
raw_body = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", position, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.SmallInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(400), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("data", json_document, nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
        sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_id_version"),
        sa.CheckConstraint(
            "source IN ('webhook', 'reconciler', 'operator')", name=op.f("ck_events_source")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_events_version_positive")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "inbox",
        sa.Column("id", position, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("notification_id", sa.String(200), nullable=True),
        sa.Column("event_type", sa.String(200), nullable=True),
        sa.Column("webhook_id", sa.String(200), nullable=True),
        sa.Column("key_id", sa.String(200), nullable=True),
        sa.Column("signed_content", sa.String(20), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=True),
        sa.Column("trace_id", sa.String(200), nullable=True),
        sa.Column("event_position", sa.BigInteger(), nullable=True),
        sa.Column("body", raw_body, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'duplicate', 'conflict', 'ignored', 'rejected')",
            name=op.f("ck_inbox_outcome"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_inbox_notification_id", "inbox", ["notification_id"])
    needs_attention = sa.text("outcome IN ('conflict', 'rejected')")
    op.create_index(
        "ix_inbox_needs_attention",
        "inbox",
        ["id"],
        postgresql_where=needs_attention,
        sqlite_where=needs_attention,
    )
    _refuse_event_changes()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION)


# Appending on PostgreSQL is one call to this function: one round trip and one commit per
# delivery. It mirrors SqlEventStore's SQLite path; the store's contract tests run on both.
# - the shared lock on APPEND_LOCK_KEY (0x1ED6E80001) lets appends run together but lets a
#   reader wait until none is in flight (see service/store/event_store.py);
# - the per-stream lock (namespace 0x1ED6 = 7894) serialises appends to one invoice, so the
#   version read below is the latest and two appends never pick the same one. Streams are
#   locked in sorted order so that multi-stream appends cannot deadlock;
# - PL/pgSQL takes a fresh snapshot per statement, so the version is read after the locks.
APPEND_FUNCTION = """
CREATE FUNCTION ledger_append(new_events jsonb, delivery jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    event jsonb;
    appended_position bigint;
    existing record;
    event_outcome text;
    results jsonb := '[]'::jsonb;
    outcomes text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock_shared(132454547457);
    PERFORM pg_advisory_xact_lock(7894, hashtext(stream_id))
    FROM (SELECT DISTINCT e->>'stream_id' AS stream_id
          FROM jsonb_array_elements(new_events) AS e ORDER BY 1) AS streams;

    FOR event IN SELECT value FROM jsonb_array_elements(new_events) LOOP
        appended_position := NULL;
        INSERT INTO events (stream_id, version, type, schema_version, occurred_at, recorded_at,
                            source, idempotency_key, content_digest, data)
        VALUES (
            event->>'stream_id',
            (SELECT coalesce(max(version), 0) + 1 FROM events
             WHERE stream_id = event->>'stream_id'),
            event->>'type',
            (event->>'schema_version')::smallint,
            (event->>'occurred_at')::timestamptz,
            (event->>'recorded_at')::timestamptz,
            event->>'source',
            event->>'idempotency_key',
            event->>'content_digest',
            event->'data'
        )
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING position INTO appended_position;

        IF appended_position IS NOT NULL THEN
            event_outcome := 'appended';
        ELSE
            SELECT position, content_digest INTO existing
            FROM events WHERE idempotency_key = event->>'idempotency_key';
            appended_position := existing.position;
            event_outcome := CASE WHEN existing.content_digest = event->>'content_digest'
                                  THEN 'duplicate' ELSE 'conflict' END;
        END IF;
        outcomes := outcomes || event_outcome;
        results := results || jsonb_build_object(
            'outcome', event_outcome, 'position', appended_position);
    END LOOP;

    IF 'appended' = ANY(outcomes) THEN
        PERFORM pg_notify('ledger_events', '');  -- wakes projectors, delivered at commit
    END IF;

    IF delivery IS NOT NULL THEN
        INSERT INTO inbox (received_at, outcome, reason, notification_id, event_type,
                           webhook_id, key_id, signed_content, retry_count, trace_id,
                           event_position, body)
        VALUES (
            (delivery->>'received_at')::timestamptz,
            CASE WHEN 'conflict' = ANY(outcomes) THEN 'conflict'
                 WHEN 'appended' = ANY(outcomes) THEN 'accepted'
                 ELSE 'duplicate' END,
            delivery->>'reason',
            delivery->>'notification_id',
            delivery->>'event_type',
            delivery->>'webhook_id',
            delivery->>'key_id',
            delivery->>'signed_content',
            (delivery->>'retry_count')::integer,
            delivery->>'trace_id',
            (results->0->>'position')::bigint,
            decode(delivery->>'body_base64', 'base64')
        );
    END IF;
    RETURN results;
END
$$
"""


def _refuse_event_changes() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION events_are_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'events are append-only: % refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events"
            " FOR EACH ROW EXECUTE FUNCTION events_are_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events"
            " FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_refuse_{operation.lower()} BEFORE {operation} ON events"
                f" BEGIN SELECT RAISE(ABORT, 'events are append-only: {operation} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_refuse_truncate ON events")
        op.execute("DROP TRIGGER events_refuse_update_delete ON events")
        op.execute("DROP FUNCTION events_are_append_only()")
        op.execute("DROP FUNCTION ledger_append(jsonb, jsonb)")
    op.drop_table("inbox")
    op.drop_table("events")
