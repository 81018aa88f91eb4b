"""``invoice-ledger reconcile --sweep [--full]`` and its usage errors, as an operator runs them."""

from __future__ import annotations

import httpx
import pytest

from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import cybersource_environment


def test_a_sweep_says_what_it_fetched_and_why(sandbox_url: str, database_url: str) -> None:
    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        json={"invoiceNumber": "K-1", "totalAmount": "12.00", "dueDate": "2026-12-31"},
    ).raise_for_status()
    environment = {**cybersource_environment(sandbox_url), "LEDGER_DATABASE_URL": database_url}

    first = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert first.returncode == 0, first.stderr
    assert "changed 1, failed 0; fetched 1 (unknown_to_ledger 1)" in first.stderr.decode()
    assert invoice_ledger("project", "--once", environment=environment).returncode == 0

    again = invoice_ledger("reconcile", "--sweep", environment=environment)
    assert "checked 1, changed 0, failed 0; fetched 0" in again.stderr.decode()
    full = invoice_ledger("reconcile", "--sweep", "--full", environment=environment)
    assert "checked 1, changed 0, failed 0; fetched 1 (full_sweep 1)" in full.stderr.decode()


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("--invoice", "K-1", "--full"), "--full goes with --sweep"),
        (("--sweep", "--forever"), "give one of"),
        (("--forever", "--status", "SENT"), "drop --status"),
        (("--sweep", "--metrics-port", "9100"), "--metrics-port goes with --forever"),
    ],
)
def test_reconcile_refuses_options_that_do_not_go_together(
    arguments: tuple[str, ...], problem: str
) -> None:
    result = invoice_ledger("reconcile", *arguments, environment={})
    assert result.returncode == 2
    assert problem in result.stderr.decode()
