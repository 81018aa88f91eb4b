"""A command beside a process holding SQLite's write lock waits for it, within a bound, and
says "locked" (never "unreachable") when the bound passes. The lock is held by the test, as a
serving process holds it while it writes."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cli import invoice_ledger
from tests.support.databases import fresh_sqlite_database

# Longer than one busy timeout (5 s), shorter than the default wait (30 s).
HELD_SECONDS = 6.5


@contextmanager
def write_lock_held(database_path: Path, seconds: float) -> Iterator[None]:
    """Another connection takes the write lock and keeps it ``seconds``, then commits."""
    taken = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(database_path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            connection.execute("COMMIT")
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(timeout=5)
        yield
    finally:
        holder.join(timeout=seconds + 5)


def test_a_command_waits_for_a_lock_held_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    with (
        fresh_sqlite_database(tmp_path) as database_url,
        write_lock_held(tmp_path / "ledger.db", HELD_SECONDS),
    ):
        started = time.monotonic()
        result = invoice_ledger(
            "prune", "--older-than", "30", environment={"LEDGER_DATABASE_URL": database_url}
        )
    assert result.returncode == 0, result.stderr.decode()
    assert time.monotonic() - started >= HELD_SECONDS - 1
    assert "sqlite.waiting_for_lock" in result.stderr.decode()


def test_a_lock_held_past_the_wait_is_reported_as_locked(tmp_path: Path) -> None:
    with (
        fresh_sqlite_database(tmp_path) as database_url,
        write_lock_held(tmp_path / "ledger.db", 3.0),
    ):
        result = invoice_ledger(
            "prune", "--older-than", "30",
            environment={"LEDGER_DATABASE_URL": f"{database_url}?timeout=1"},
        )  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "database locked" in message
    assert "unreachable" not in message and "unavailable" not in message
