"""The one definition of the database schema. Alembic migrations create it; nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from service.domain.events import EventSource

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware UTC out, on every engine (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL positions need 64 bits.
Position = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
RawBody = LargeBinary().with_variant(BYTEA(), "postgresql")


class InboxOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    IGNORED = "ignored"
    REJECTED = "rejected"


NEEDS_ATTENTION = "outcome IN ('conflict', 'rejected')"


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("stream_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("source", String(20), nullable=False),
    Column("idempotency_key", String(400), nullable=False),
    # SHA-256 of the fact's content: tells a harmless repeat from a conflicting one.
    Column("content_digest", String(64), nullable=False),
    Column("data", JsonDocument, nullable=False),
    UniqueConstraint("idempotency_key"),
    UniqueConstraint("stream_id", "version"),
    CheckConstraint(_one_of("source", EventSource), name="source"),
    CheckConstraint("version >= 1", name="version_positive"),
    sqlite_autoincrement=True,
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("notification_id", String(200), nullable=True),
    Column("event_type", String(200), nullable=True),
    Column("webhook_id", String(200), nullable=True),
    Column("key_id", String(200), nullable=True),
    Column("signed_content", String(20), nullable=True),
    Column("retry_count", Integer, nullable=True),
    Column("trace_id", String(200), nullable=True),
    Column("event_position", BigInteger, nullable=True),
    # Kept for every signature-valid delivery, so an operator can replay or inspect it.
    Column("body", RawBody, nullable=True),
    CheckConstraint(_one_of("outcome", InboxOutcome), name="outcome"),
    Index("ix_inbox_notification_id", "notification_id"),
    # Operators look for the deliveries that need them; accepted ones (nearly all) are left
    # out of this index so that it costs the write path nothing. Ids grow with time, so
    # time ranges over the whole inbox are ranges of ids.
    Index(
        "ix_inbox_needs_attention",
        "id",
        postgresql_where=text(NEEDS_ATTENTION),
        sqlite_where=text(NEEDS_ATTENTION),
    ),
    sqlite_autoincrement=True,
)


# Read models, derived from the events by the projector and rebuildable from them at any time.
# Amounts are whole micro-units (BigInteger), exact on both engines.

projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
    # A lease: one projector per projection across every replica.
    Column("owner", String(200), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)


def _invoice_columns() -> list[Column[Any]]:
    return [
        Column("invoice_number", String(200), primary_key=True),
        Column("status", String(20), nullable=True),
        Column("currency", String(3), nullable=True),
        Column("total_micros", BigInteger, nullable=True),
        Column("balance_micros", BigInteger, nullable=True),
        Column("due_date", Date, nullable=True),
        Column("customer_name", String(200), nullable=True),
        Column("customer_email", String(200), nullable=True),
        Column("payments", JsonDocument, nullable=False),
        Column("last_event_at", UtcDateTime, nullable=True),
        Column("last_position", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    ]


def _invoice_version_columns() -> list[Column[Any]]:
    # One row per state an invoice was in, valid from a provider time until the next one.
    return [
        Column("invoice_number", String(200), primary_key=True),
        Column("valid_from", UtcDateTime, primary_key=True),
        Column("valid_to", UtcDateTime, nullable=True),
        Column("status", String(20), nullable=True),
        Column("currency", String(3), nullable=True),
        Column("balance_micros", BigInteger, nullable=True),
        Column("due_date", Date, nullable=True),
    ]


def _collection_columns() -> list[Column[Any]]:
    return [
        Column("invoice_number", String(200), primary_key=True),
        Column("sequence", Integer, primary_key=True),
        Column("collected_at", UtcDateTime, nullable=False),
        Column("currency", String(3), nullable=True),
        Column("amount_micros", BigInteger, nullable=False),
    ]


invoices = Table(
    "invoices",
    metadata,
    *_invoice_columns(),
    Index("ix_invoices_updated_at_invoice_number", "updated_at", "invoice_number"),
    Index("ix_invoices_status_currency", "status", "currency"),
    Index("ix_invoices_due_date", "due_date"),
)
invoice_versions = Table(
    "invoice_versions",
    metadata,
    *_invoice_version_columns(),
    Index("ix_invoice_versions_valid_from_valid_to", "valid_from", "valid_to"),
)
invoice_collections = Table(
    "invoice_collections",
    metadata,
    *_collection_columns(),
    Index("ix_invoice_collections_collected_at", "collected_at"),
)

# A rebuild fills these, then swaps their content into the live tables in one transaction,
# so dashboards never see a half-built read model.
rebuild_invoices = Table("rebuild_invoices", metadata, *_invoice_columns())
rebuild_invoice_versions = Table("rebuild_invoice_versions", metadata, *_invoice_version_columns())
rebuild_invoice_collections = Table("rebuild_invoice_collections", metadata, *_collection_columns())

# Per status and currency, the number of invoices and the sums of their known amounts: kept
# current by the projector in the same transaction as the invoice rows, so the status and
# current outstanding reports read a handful of rows instead of every invoice.
# An unknown status or currency is stored as "" (key columns cannot be NULL).
invoice_totals = Table(
    "invoice_totals",
    metadata,
    Column("status", String(20), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("invoices", BigInteger, nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    Column("balance_micros", BigInteger, nullable=False),
)
