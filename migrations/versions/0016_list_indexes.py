"""Indexes for the list of invoices: one per filter the list offers, each ending in its order.

The list is read by (updated_at, organization_id, invoice_number). With only that index and
(status, currency) and (due_date), a filter matching few invoices made PostgreSQL walk the
order index and discard row after row (a currency and a due date, a customer's name), or read
every match and sort it. Each index here leads with a filter's columns and ends in the list's
order, so a filtered page is read in order and stops at its limit. ``ix_invoices_status_currency``
and ``ix_invoices_due_date`` are replaced by their wider forms (same leading columns).

The downgrade restores the two indexes and drops the others.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

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
REPLACED = {
    "ix_invoices_status_currency": ["status", "currency"],
    "ix_invoices_due_date": ["due_date"],
}


def upgrade() -> None:
    for name in REPLACED:
        op.drop_index(name, table_name="invoices")
    for name, leading in LIST_FILTERS.items():
        order = [column for column in LIST_ORDER if column not in leading]
        op.create_index(f"ix_invoices_list_by_{name}", "invoices", [*leading, *order])


def downgrade() -> None:
    for name in LIST_FILTERS:
        op.drop_index(f"ix_invoices_list_by_{name}", table_name="invoices")
    for name, columns in REPLACED.items():
        op.create_index(name, "invoices", columns)
