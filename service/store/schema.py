"""The one definition of the database schema. Alembic migrations create it; nothing else does."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)

from service.domain.events import EventSource
from service.store.accounting_schema import accounting_tables
from service.store.column_types import ExactAmount, JsonDocument, Position, RawBody, UtcDateTime
from service.store.delivery_history_schema import (  # ReplayResult: with the other outcomes
    ReplayResult as ReplayResult,
)
from service.store.delivery_history_schema import delivery_history_tables

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


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
    # What reading the body again needs: the kept headers (names in lower case) and the
    # verified signature's time. NULL for deliveries received before migration 0006.
    Column("headers", JsonDocument, nullable=True),
    Column("signed_at", UtcDateTime, nullable=True),
    # The organization the notification names (or, unread, its V-C-Organization-Id header).
    Column("organization_id", String(200), nullable=True),
    # When an erasure of a payer the body named replaced it with nothing (migration 0015).
    Column("body_redacted_at", UtcDateTime, nullable=True),
    CheckConstraint(_one_of("outcome", InboxOutcome), name="outcome"),
    Index("ix_inbox_notification_id", "notification_id"),
    Index("ix_inbox_organization_id", "organization_id"),
    # Operators look for the deliveries that need them; accepted ones (nearly all) are left
    # out of this index so that it costs the write path nothing. Ids grow with time, so
    # time ranges over the whole inbox are ranges of ids.
    Index(
        "ix_inbox_needs_attention",
        "id",
        postgresql_where=text(NEEDS_ATTENTION),
        sqlite_where=text(NEEDS_ATTENTION),
    ),
    # Retention finds the oldest rows of an outcome, and the inbox gauge counts them, here.
    Index("ix_inbox_outcome_received_at", "outcome", "received_at"),
    # The deliveries of an invoice, through its events' positions (migration 0021).
    Index("ix_inbox_event_position", "event_position"),
    sqlite_autoincrement=True,
)


# What became of each delivery after it arrived: replays, resolutions and notices
# (service.store.delivery_history_schema).
delivery_replays, delivery_resolutions, delivery_notices = delivery_history_tables(metadata)


# Read models, derived from the events by the projector and rebuildable from them at any time.
# Every invoice row is keyed by (organization_id, invoice_number): invoice numbers are unique
# per organization only. An unknown organization is "" (key columns cannot be NULL).
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


def _organization_column() -> Column[str]:
    return Column("organization_id", String(200), primary_key=True)


def _provisional_flag(name: str) -> Column[bool]:
    # True: the amount beside it is inferred from notifications alone, not yet confirmed by
    # Cybersource's answer (see service.domain.invoice.InvoiceState).
    return Column(name, Boolean, nullable=False)


def _state_columns() -> list[Column[Any]]:
    # An invoice's state: in its current row and in each row of its history.
    return [
        Column("status", String(20), nullable=True),
        Column("currency", String(3), nullable=True),
        Column("total_amount", ExactAmount, nullable=True),
        Column("balance_amount", ExactAmount, nullable=True),
        _provisional_flag("total_provisional"),
        _provisional_flag("balance_provisional"),
        Column("due_date", Date, nullable=True),
    ]


def _invoice_columns() -> list[Column[Any]]:
    return [
        _organization_column(),
        Column("invoice_number", String(200), primary_key=True),
        *_state_columns(),
        Column("customer_name", String(200), nullable=True),
        Column("customer_email", String(200), nullable=True),
        # The payer the facts named was erased (service.store.personal_data).
        Column("customer_erased", Boolean, nullable=False, server_default=false()),
        Column("payments", JsonDocument, nullable=False),
        Column("last_event_at", UtcDateTime, nullable=True),
        Column("last_position", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    ]


def _invoice_version_columns() -> list[Column[Any]]:
    # One row per state an invoice was in, valid from a provider time until the next one.
    return [
        _organization_column(),
        Column("invoice_number", String(200), primary_key=True),
        Column("valid_from", UtcDateTime, primary_key=True),
        Column("valid_to", UtcDateTime, nullable=True),
        *_state_columns(),
    ]


def _collection_columns() -> list[Column[Any]]:
    return [
        _organization_column(),
        Column("invoice_number", String(200), primary_key=True),
        Column("sequence", Integer, primary_key=True),
        Column("collected_at", UtcDateTime, nullable=False),
        Column("currency", String(3), nullable=True),
        # NULL: money arrived but how much is not known yet; never counted as zero.
        Column("amount", ExactAmount, nullable=True),
        _provisional_flag("provisional"),
    ]


LIST_ORDER = ("updated_at", "organization_id", "invoice_number")
LIST_FILTERS = {
    "organization_id": ("organization_id",),
    "status": ("status",),
    "status_currency": ("status", "currency"),
    "currency": ("currency",),
    "due_date": ("due_date",),
    "customer_name": ("customer_name",),
    "customer_email": ("customer_email",),
}
invoices = Table(
    "invoices",
    metadata,
    *_invoice_columns(),
    Index(
        "ix_invoices_updated_at_organization_id_invoice_number",
        "updated_at",
        "organization_id",
        "invoice_number",
    ),
    # Looking an invoice up by its number alone finds it in every organization that has one.
    Index("ix_invoices_invoice_number", "invoice_number"),
    # The list of invoices: one index per filter it offers, each ending in the list's order,
    # so a filtered page is read in order and stops at its limit (migration 0016).
    *(
        Index(f"ix_invoices_list_by_{name}", *leading, *(c for c in LIST_ORDER if c not in leading))
        for name, leading in LIST_FILTERS.items()
    ),
    # The console's list sorted by balance, read in that order (migration 0024).
    Index("ix_invoices_list_by_balance_amount", "balance_amount", *LIST_ORDER),
)
invoice_versions = Table(
    "invoice_versions",
    metadata,
    *_invoice_version_columns(),
    Index("ix_invoice_versions_valid_from_valid_to", "valid_from", "valid_to"),
    # The reports' aggregates read the state rows that ended on a day from it.
    Index("ix_invoice_versions_valid_to", "valid_to"),
)
invoice_collections = Table(
    "invoice_collections",
    metadata,
    *_collection_columns(),
    Index("ix_invoice_collections_collected_at", "collected_at"),
)

# A rebuild fills these, then swaps them in for the live tables in one transaction (on
# PostgreSQL by renaming the tables, on SQLite by copying the rows), so dashboards never see a
# half-built read model.
rebuild_invoices = Table("rebuild_invoices", metadata, *_invoice_columns())
rebuild_invoice_versions = Table("rebuild_invoice_versions", metadata, *_invoice_version_columns())
rebuild_invoice_collections = Table("rebuild_invoice_collections", metadata, *_collection_columns())

# Where each stream's fold stands (service.projections.fold_snapshots), at the projector
# position it reflects: the projector folds only a batch's new facts onto it.
invoice_fold_snapshots = Table(
    "invoice_fold_snapshots",
    metadata,
    Column("stream_id", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    # JSON, not JSONB: the document is only ever written and read whole.
    Column("snapshot", JSON(), nullable=False),
)

# Per organization, status and currency: the number of invoices, the sums of their known
# amounts (and the provisional part of each sum), and how many lack each amount (so a report
# can say it is incomplete without reading every invoice). Kept current by the projector in
# the same transaction as the invoice rows, so the status and current outstanding reports read
# a handful of rows.
# An unknown status or currency is stored as "" (key columns cannot be NULL).
invoice_totals = Table(
    "invoice_totals",
    metadata,
    Column("organization_id", String(200), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("invoices", BigInteger, nullable=False),
    Column("total_amount", ExactAmount, nullable=False),
    Column("balance_amount", ExactAmount, nullable=False),
    Column("provisional_total_amount", ExactAmount, nullable=False),
    Column("provisional_balance_amount", ExactAmount, nullable=False),
    Column("invoices_without_total", BigInteger, nullable=False),
    Column("invoices_without_balance", BigInteger, nullable=False),
)


def _report_key_columns(*days: str) -> list[Column[Any]]:
    # Organization, currency ("" unknown) and day ordinals (a due date's or a UTC day's).
    return [
        Column("organization_id", String(200), primary_key=True),
        Column("currency", String(3), primary_key=True),
        *(Column(day, Integer, primary_key=True) for day in days),
    ]


def _open_balance_figures() -> list[Column[Any]]:
    # Open states: how many opened and closed, how many of those lacked a balance, the sums
    # of their known balances and the provisional part of each sum.
    return [
        Column("opened", BigInteger, nullable=False),
        Column("closed", BigInteger, nullable=False),
        Column("opened_without_balance", BigInteger, nullable=False),
        Column("closed_without_balance", BigInteger, nullable=False),
        Column("balance_opened", ExactAmount, nullable=False),
        Column("balance_closed", ExactAmount, nullable=False),
        Column("provisional_balance_opened", ExactAmount, nullable=False),
        Column("provisional_balance_closed", ExactAmount, nullable=False),
    ]


# Report aggregates (service.store.views.report_aggregates), kept by the projector with the read
# rows. Per organization, currency ("" unknown), due day (the due date's ordinal, 0 for none)
# and UTC day (ordinal): the open states that began and ended on that day, how many of them
# lacked a balance, the sums of their known balances and the provisional part of those sums.
report_open_balance_changes = Table(
    "report_open_balance_changes",
    metadata,
    *_report_key_columns("due_day", "day"),
    *_open_balance_figures(),
    Index("ix_report_open_balance_changes_day", "day"),
)
# The same summed over every day, per organization, currency and due day: a report as of a
# recent date takes from it the days after that date instead of adding up all before.
report_open_balance_totals = Table(
    "report_open_balance_totals",
    metadata,
    *_report_key_columns("due_day"),
    *_open_balance_figures(),
)
# Per organization, currency and UTC day: collections, those of unknown amount, their sum and
# the provisional part of it.
report_daily_collections = Table(
    "report_daily_collections",
    metadata,
    *_report_key_columns("day"),
    Column("collections", BigInteger, nullable=False),
    Column("without_amount", BigInteger, nullable=False),
    Column("amount", ExactAmount, nullable=False),
    Column("provisional_amount", ExactAmount, nullable=False),
    Index("ix_report_daily_collections_day", "day"),
)

# Console sign-ins (service.store.console_sessions). The browser holds a random session id;
# only its SHA-256 is kept, so this table's rows open no session. A session names the token
# it was opened with (token_name: a prefix of the token's SHA-256, never the token) and that
# token's scope: it ends at expires_at, at sign-out (revoked_at), or when no configured token
# has that name and scope any more. Rows past expires_at are deleted.
CONSOLE_SESSION_SCOPES = ("read", "operator")
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_digest", String(64), primary_key=True),
    Column("caller_name", String(100), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint(_one_of("scope", CONSOLE_SESSION_SCOPES), name="scope"),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# One AES-256 data key per payer (service.store.personal_data), wrapped by the master key.
# ``payer`` is a keyed hash of the payer's normalised email (or name): no clear email here.
# Erasing a payer deletes its row, and with it every way to read what was sealed under it.
personal_data_keys = Table(
    "personal_data_keys",
    metadata,
    Column("payer", String(64), primary_key=True),
    Column("wrapped_key", RawBody, nullable=False),
    # The fingerprint of the master key that wrapped it (never the key).
    Column("master_key_id", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Accounting exports and the lines each holds (service.store.accounting_schema).
accounting_exports, accounting_export_lines = accounting_tables(metadata)
