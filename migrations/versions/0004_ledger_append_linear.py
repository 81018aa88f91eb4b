"""ledger_append builds its answer in time linear in the events of a delivery.

The first version concatenated a jsonb array per event, copying the whole answer each time:
a delivery listing thousands of invoices held the append lock (and so held up the projector)
for seconds. This version collects outcomes and positions in arrays, which PL/pgSQL grows in
place, and builds the answer once. The function's text lives in ``sql/`` beside ``versions/``.
PostgreSQL only; SQLite appends in Python.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MIGRATIONS = Path(__file__).resolve().parents[1]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute((MIGRATIONS / "sql" / "ledger_append_linear.sql").read_text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        first = MIGRATIONS / "versions" / "0001_event_store.py"
        spec = importlib.util.spec_from_file_location("event_store_migration", first)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        op.execute(module.APPEND_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
