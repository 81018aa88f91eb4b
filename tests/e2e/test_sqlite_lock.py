"""A command beside a process holding SQLite's write lock waits for it, within a bound, and
says "locked" (never "unreachable") when the bound passes. The lock is held by the test, as a
serving process holds it while it writes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.support.cli import invoice_ledger
from tests.support.databases import fresh_sqlite_database

# The most the first test holds the lock while it waits for the command to say it waits.
LONGEST_HOLD_SECONDS = 25.0


@contextmanager
def write_lock_held(
    database_path: Path, seconds: float, released: threading.Event | None = None
) -> Iterator[None]:
    """Another connection takes the write lock and keeps it ``seconds`` (or until
    ``released`` is set, if given first), then commits."""
    taken = threading.Event()
    release = released or threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(database_path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            taken.set()
            release.wait(timeout=seconds)
            connection.execute("COMMIT")
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(timeout=5)
        yield
    finally:
        release.set()
        holder.join(timeout=seconds + 5)


def test_a_command_waits_for_a_lock_held_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    # The holder releases the lock as soon as the command says it waits, however long the
    # command took to start: a fixed hold would race the interpreter's start-up.
    said_it_waits = threading.Event()
    stderr_lines: list[str] = []

    def read_stderr(stream: IO[bytes]) -> None:
        for line in stream:
            stderr_lines.append(line.decode())
            if "sqlite.waiting_for_lock" in stderr_lines[-1]:
                said_it_waits.set()

    with (
        fresh_sqlite_database(tmp_path) as database_url,
        write_lock_held(tmp_path / "ledger.db", LONGEST_HOLD_SECONDS, released=said_it_waits),
        subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "prune", "--older-than", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "LEDGER_DATABASE_URL": database_url},
        ) as command,
    ):
        assert command.stdout is not None and command.stderr is not None
        reader = threading.Thread(target=read_stderr, args=(command.stderr,), daemon=True)
        reader.start()
        try:
            assert said_it_waits.wait(timeout=LONGEST_HOLD_SECONDS), "".join(stderr_lines)
            # Bounded before its output is read (a line or two: the pipe cannot fill), so a
            # command that never ends fails the test instead of blocking the read for ever.
            assert command.wait(timeout=30) == 0, "".join(stderr_lines)
            output = command.stdout.read()
        finally:
            command.kill()  # nothing if it has ended; Popen's exit waits for it unbounded
        reader.join(timeout=5)
    assert b"deleted 0 rows" in output


def test_a_lock_held_past_the_wait_is_reported_as_locked(tmp_path: Path) -> None:
    # Held until the command has answered, however long it took to start.
    with (
        fresh_sqlite_database(tmp_path) as database_url,
        write_lock_held(tmp_path / "ledger.db", LONGEST_HOLD_SECONDS),
    ):
        result = invoice_ledger(
            "prune", "--older-than", "30",
            environment={"LEDGER_DATABASE_URL": f"{database_url}?timeout=1"},
        )  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "database locked" in message
    assert "unreachable" not in message and "unavailable" not in message
