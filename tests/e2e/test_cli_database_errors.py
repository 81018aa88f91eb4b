"""Database problems end a command with one line naming them on stderr and exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.cli import invoice_ledger
from tests.support.databases import PostgresServer, postgresql_url
from tests.support.process import free_port


def assert_one_line_and_exit_code_2(
    result: subprocess.CompletedProcess[bytes], *expected: str
) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("invoice-ledger:")]
    for words in expected:
        assert words in line
    return line


@pytest.mark.parametrize(
    "command", [("migrate",), ("events",), ("rebuild",), ("project", "--once")]
)
def test_an_unreachable_database_is_named_in_one_line(command: tuple[str, ...]) -> None:
    environment = {"LEDGER_DATABASE_URL": f"postgresql://ledger@127.0.0.1:{free_port()}/ledger"}
    result = invoice_ledger(*command, environment=environment)
    assert_one_line_and_exit_code_2(
        result, "database unavailable: connection refused", "LEDGER_DATABASE_URL"
    )
    assert result.stderr.decode().count("\n") == 1


COMMANDS = [
    ("migrate",), ("events",), ("rebuild",), ("project", "--once"), ("deliveries", "list"),
    ("prune", "--older-than", "30"),
]  # fmt: skip


@pytest.mark.postgresql
@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_database_or_role_is_named_in_one_line(
    command: tuple[str, ...], postgres_server: PostgresServer
) -> None:
    postgres_server.require()
    base = make_url(postgresql_url(postgres_server.user or "postgres", "postgres"))
    cases = [
        (base.set(database="ledger_never_made"), 'database "ledger_never_made" does not exist'),
        (base.set(username="nobody_at_all"), 'role "nobody_at_all" does not exist'),
    ]  # fmt: skip
    for url, expected in cases:
        environment = {"LEDGER_DATABASE_URL": url.render_as_string(hide_password=False)}
        result = invoice_ledger(*command, environment=environment)
        assert_one_line_and_exit_code_2(result, expected, "LEDGER_DATABASE_URL")
        assert result.stderr.decode().count("\n") == 1


@pytest.mark.parametrize("command", [("events",), ("rebuild",), ("project", "--once")])
def test_an_unmigrated_database_asks_for_migrate(command: tuple[str, ...], tmp_path: Path) -> None:
    environment = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = invoice_ledger(*command, environment=environment)
    assert_one_line_and_exit_code_2(result, "run invoice-ledger migrate")
    assert result.stderr.decode().count("\n") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://ledger@db/ledger", "unsupported database 'mysql'"),
        ("postgresql://ledger:secret@db:port/ledger", "LEDGER_DATABASE_URL"),
    ],
)
def test_a_bad_database_url_is_named_without_its_password(url: str, expected: str) -> None:
    result = invoice_ledger("events", environment={"LEDGER_DATABASE_URL": url})
    assert_one_line_and_exit_code_2(result, "LEDGER_DATABASE_URL", expected)
    assert "secret" not in result.stderr.decode()


def test_debug_shows_the_traceback_of_a_database_problem(tmp_path: Path) -> None:
    environment = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = invoice_ledger("--debug", "events", environment=environment)
    assert result.returncode != 0
    assert "Traceback" in result.stderr.decode()
    assert "SchemaNotAtHead" in result.stderr.decode()
