"""``invoice-ledger prune``: a dry run counts, a run deletes, both only what retention allows."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import insert, select

from service.store.schema import InboxOutcome, inbox
from tests.support.databases import fresh_sqlite_database


def run_prune(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "prune", *arguments],
        env={**os.environ, "LEDGER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prune_counts_in_a_dry_run_then_deletes_only_expired_refusals(tmp_path: Path) -> None:
    with fresh_sqlite_database(tmp_path) as database_url:
        engine = create_sync_engine(database_url)
        old = datetime.now(UTC) - timedelta(days=45)
        with engine.begin() as connection:
            for outcome, body in [
                (InboxOutcome.REJECTED, None),  # an expired refusal
                (InboxOutcome.REJECTED, b"{}"),  # a dead letter
                (InboxOutcome.ACCEPTED, b"{}"),
            ]:
                connection.execute(
                    insert(inbox).values(received_at=old, outcome=outcome.value, body=body)
                )

        dry = run_prune(database_url, "--older-than", "30", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("refused: would delete 1 rows received before ")

        done = run_prune(database_url, "--older-than", "30")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("refused: deleted 1 rows")

        with engine.connect() as connection:
            left = sorted(
                (outcome, body is not None)
                for outcome, body in connection.execute(select(inbox.c.outcome, inbox.c.body))
            )
        engine.dispose()
        assert left == [("accepted", True), ("rejected", True)]

        refused_choice = run_prune(database_url, "--older-than", "30", "--outcome", "conflict")
        assert refused_choice.returncode == 2
