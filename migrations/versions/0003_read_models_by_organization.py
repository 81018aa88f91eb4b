"""Read models keyed by (organization, invoice number), with exact amounts that cannot overflow.

Invoice numbers are unique per organization only, so every read-model row gets an
``organization_id`` ("" when unknown) in its primary key. Amounts, BIGINT micro-units until
now (which overflow when two amounts of 9,999,999,999,999.99 are summed), become NUMERIC(38, 6)
on PostgreSQL and fixed-width decimal text on SQLite (whose NUMERIC is floating point).
Version rows gain the invoice's total; collections may have an unknown (NULL) amount; the
per-status totals count the invoices that lack a total or a balance.

The events table is not touched: no event is lost or changed. The read models are derived
from the events, so this migration empties them and sets the "invoices" projection's
checkpoint back to position 0; the projector then rebuilds every row from the events, with
the new keys, as soon as the service runs. Until it has caught up, reports show only the
invoices projected so far (``X-Ledger-Position`` says how far that is). The tables are
altered rather than dropped, so the privileges granted on them
(deploy/postgres/least-privilege.sql) stay as they are. The downgrade empties them again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

exact_amount = sa.Numeric(38, 6).with_variant(sa.Text(), "sqlite")
ORGANIZATION = "organization_id"


class ReadModelChange(NamedTuple):
    table: str
    key_after_organization: tuple[str, ...]
    amounts: dict[str, str]  # old micro-unit column: new exact column
    added_amounts: tuple[str, ...] = ()  # new exact columns with no micro-unit column before
    amount_required_before: bool = False


def _changes() -> list[ReadModelChange]:
    changes = []
    for prefix in ("", "rebuild_"):
        changes += [
            ReadModelChange(
                f"{prefix}invoices",
                ("invoice_number",),
                {"total_micros": "total_amount", "balance_micros": "balance_amount"},
            ),
            ReadModelChange(
                f"{prefix}invoice_versions",
                ("invoice_number", "valid_from"),
                {"balance_micros": "balance_amount"},
                added_amounts=("total_amount",),
            ),
            ReadModelChange(
                f"{prefix}invoice_collections",
                ("invoice_number", "sequence"),
                {"amount_micros": "amount"},
                amount_required_before=True,
            ),
        ]
    return changes


TOTALS_COUNTS = ("invoices_without_total", "invoices_without_balance")


def upgrade() -> None:
    _empty_read_models()
    for change in _changes():
        with op.batch_alter_table(change.table) as batch:
            batch.drop_constraint(f"pk_{change.table}", type_="primary")
            batch.add_column(sa.Column(ORGANIZATION, sa.String(200), nullable=False))
            batch.create_primary_key(
                f"pk_{change.table}", [ORGANIZATION, *change.key_after_organization]
            )
            for old, new in change.amounts.items():
                batch.drop_column(old)
                batch.add_column(sa.Column(new, exact_amount, nullable=True))
            for new in change.added_amounts:
                batch.add_column(sa.Column(new, exact_amount, nullable=True))
    with op.batch_alter_table("invoices") as batch:
        batch.drop_index("ix_invoices_updated_at_invoice_number")
        batch.create_index(
            "ix_invoices_updated_at_organization_id_invoice_number",
            ["updated_at", ORGANIZATION, "invoice_number"],
        )
        batch.create_index("ix_invoices_invoice_number", ["invoice_number"])
    with op.batch_alter_table("invoice_totals") as batch:
        batch.drop_constraint("pk_invoice_totals", type_="primary")
        batch.add_column(sa.Column(ORGANIZATION, sa.String(200), nullable=False))
        batch.create_primary_key("pk_invoice_totals", [ORGANIZATION, "status", "currency"])
        for old, new in (("total_micros", "total_amount"), ("balance_micros", "balance_amount")):
            batch.drop_column(old)
            batch.add_column(sa.Column(new, exact_amount, nullable=False))
        for count in TOTALS_COUNTS:
            batch.add_column(sa.Column(count, sa.BigInteger(), nullable=False))
    _project_again_from_the_start()


def downgrade() -> None:
    _empty_read_models()
    with op.batch_alter_table("invoice_totals") as batch:
        for count in TOTALS_COUNTS:
            batch.drop_column(count)
        for old, new in (("total_micros", "total_amount"), ("balance_micros", "balance_amount")):
            batch.drop_column(new)
            batch.add_column(sa.Column(old, sa.BigInteger(), nullable=False))
        batch.drop_constraint("pk_invoice_totals", type_="primary")
        batch.drop_column(ORGANIZATION)
        batch.create_primary_key("pk_invoice_totals", ["status", "currency"])
    with op.batch_alter_table("invoices") as batch:
        batch.drop_index("ix_invoices_invoice_number")
        batch.drop_index("ix_invoices_updated_at_organization_id_invoice_number")
        batch.create_index(
            "ix_invoices_updated_at_invoice_number", ["updated_at", "invoice_number"]
        )
    for change in _changes():
        with op.batch_alter_table(change.table) as batch:
            for new in change.added_amounts:
                batch.drop_column(new)
            for old, new in change.amounts.items():
                batch.drop_column(new)
                batch.add_column(
                    sa.Column(old, sa.BigInteger(), nullable=not change.amount_required_before)
                )
            batch.drop_constraint(f"pk_{change.table}", type_="primary")
            batch.drop_column(ORGANIZATION)
            batch.create_primary_key(f"pk_{change.table}", list(change.key_after_organization))
    _project_again_from_the_start()


def _empty_read_models() -> None:
    for table in [change.table for change in _changes()] + ["invoice_totals"]:
        op.execute(sa.text(f"DELETE FROM {table}"))


def _project_again_from_the_start() -> None:
    op.execute(sa.text("UPDATE projection_checkpoints SET position = 0 WHERE name = 'invoices'"))
