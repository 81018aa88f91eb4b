"""Invoice read models: current state, state history, collections, totals, checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

json_document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _invoice_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("invoice_number", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("total_micros", sa.BigInteger(), nullable=True),
        sa.Column("balance_micros", sa.BigInteger(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("customer_name", sa.String(200), nullable=True),
        sa.Column("customer_email", sa.String(200), nullable=True),
        sa.Column("payments", json_document, nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _invoice_version_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("invoice_number", sa.String(200), primary_key=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("balance_micros", sa.BigInteger(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
    ]


def _collection_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("invoice_number", sa.String(200), primary_key=True),
        sa.Column("sequence", sa.Integer(), primary_key=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_projection_checkpoints"),
    )
    for prefix in ("", "rebuild_"):
        op.create_table(
            f"{prefix}invoices",
            *_invoice_columns(),
            sa.PrimaryKeyConstraint("invoice_number", name=f"pk_{prefix}invoices"),
        )
        op.create_table(
            f"{prefix}invoice_versions",
            *_invoice_version_columns(),
            sa.PrimaryKeyConstraint(
                "invoice_number", "valid_from", name=f"pk_{prefix}invoice_versions"
            ),
        )
        op.create_table(
            f"{prefix}invoice_collections",
            *_collection_columns(),
            sa.PrimaryKeyConstraint(
                "invoice_number", "sequence", name=f"pk_{prefix}invoice_collections"
            ),
        )
    op.create_table(
        "invoice_totals",
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("invoices", sa.BigInteger(), nullable=False),
        sa.Column("total_micros", sa.BigInteger(), nullable=False),
        sa.Column("balance_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("status", "currency", name="pk_invoice_totals"),
    )
    op.create_index(
        "ix_invoices_updated_at_invoice_number", "invoices", ["updated_at", "invoice_number"]
    )
    op.create_index("ix_invoices_status_currency", "invoices", ["status", "currency"])
    op.create_index("ix_invoices_due_date", "invoices", ["due_date"])
    op.create_index(
        "ix_invoice_versions_valid_from_valid_to", "invoice_versions", ["valid_from", "valid_to"]
    )
    op.create_index("ix_invoice_collections_collected_at", "invoice_collections", ["collected_at"])


def downgrade() -> None:
    op.drop_table("invoice_totals")
    for prefix in ("rebuild_", ""):
        op.drop_table(f"{prefix}invoice_collections")
        op.drop_table(f"{prefix}invoice_versions")
        op.drop_table(f"{prefix}invoices")
    op.drop_table("projection_checkpoints")
