"""The tables of accounting exports (service.store.accounting_exports), made on the schema's
metadata by ``service.store.schema``. Both are append-only: an export and its lines are never
changed or deleted, so what finance imported can always be downloaded again, identically."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

from service.store.column_types import ExactAmount, Position, UtcDateTime

EXPORT_KINDS = ("payments", "receivables")
LINE_KINDS = ("payment", "reversal", "receivable")


def accounting_tables(metadata: MetaData) -> tuple[Table, Table]:
    exports = Table(
        "accounting_exports",
        metadata,
        Column("id", Position, primary_key=True, autoincrement=True),
        Column("kind", String(20), nullable=False),
        Column("period_from", Date, nullable=False),
        Column("period_to", Date, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("created_by", String(100), nullable=False),
        # SHA-256 of the lines as stored, whatever format they are downloaded in.
        Column("content_digest", String(64), nullable=False),
        Column("line_count", Integer, nullable=False),
        # The merchant whose organizations it keeps to; NULL: every merchant.
        Column("merchant", String(100), nullable=True),
        CheckConstraint("kind IN ('payments', 'receivables')", name="kind"),
        sqlite_autoincrement=True,
    )
    lines = Table(
        "accounting_export_lines",
        metadata,
        Column("export_id", Position, primary_key=True),
        Column("line", Integer, primary_key=True),
        Column("kind", String(20), nullable=False),
        Column("organization_id", String(200), nullable=False),
        Column("invoice_number", String(200), nullable=False),
        # A payment's stable identity is (organization, invoice number, sequence); 0 on a
        # receivable.
        Column("sequence", Integer, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=True),
        Column("due_date", Date, nullable=True),
        Column("currency", String(3), nullable=False),
        # Never negative: a reversal's kind gives its sign.
        Column("amount", ExactAmount, nullable=False),
        Column("provisional", Boolean, nullable=False),
        Column("source", String(20), nullable=False),
        Column("position", Position, nullable=False),
        CheckConstraint("kind IN ('payment', 'reversal', 'receivable')", name="kind"),
        Index(
            "ix_accounting_export_lines_identity",
            "organization_id",
            "invoice_number",
            "sequence",
        ),
    )
    return exports, lines
