"""``--json`` on ``reconcile``, ``prune``, ``project`` and ``rebuild``: one JSON document on
stdout with what the summary line says, and nothing else there."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import InboxOutcome, inbox
from tests.support.cli import invoice_ledger
from tests.support.cybersource_sandbox import MERCHANT, cybersource_environment


def printed_document(result: Any) -> Any:
    """The whole of stdout, read as one JSON document."""
    return json.loads(result.stdout.decode())


def test_a_sweep_then_projection_and_rebuild_each_print_one_document(
    sandbox_url: str, database_url: str
) -> None:
    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        json={"invoiceNumber": "J-1", "totalAmount": "12.00", "dueDate": "2026-12-31"},
    ).raise_for_status()
    environment = {**cybersource_environment(sandbox_url), "LEDGER_DATABASE_URL": database_url}

    swept = invoice_ledger("reconcile", "--sweep", "--json", environment=environment)
    assert swept.returncode == 0, swept.stderr
    assert printed_document(swept) == {
        "checked": 1,
        "changed": 1,
        "failed": 0,
        "fetched": 1,
        "fetchReasons": {"unknown_to_ledger": 1},
        "organizations": {
            MERCHANT.merchant_id: {"checked": 1, "fetched": 1, "changed": 1, "failed": 0}
        },
        "errors": [],
        "errorsNotShown": 0,
    }
    assert "checked 1" not in swept.stderr.decode()

    projected = invoice_ledger("project", "--once", "--json", environment=environment)
    assert projected.returncode == 0, projected.stderr
    position = printed_document(projected)["position"]
    assert position > 0

    rebuilt = invoice_ledger("rebuild", "--json", environment=environment)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert printed_document(rebuilt) == {"position": position}


def test_a_reconciliation_that_failed_prints_its_error_and_exits_one(
    sandbox_url: str, database_url: str
) -> None:
    environment = {**cybersource_environment(sandbox_url), "LEDGER_DATABASE_URL": database_url}
    result = invoice_ledger("reconcile", "--invoice", "NO-SUCH", "--json", environment=environment)
    assert result.returncode == 1
    document = printed_document(result)
    assert (document["checked"], document["fetched"], document["failed"]) == (1, 1, 1)
    assert len(document["errors"]) == 1
    assert document["errors"][0].startswith(f"{MERCHANT.merchant_id}/NO-SUCH: ")


def test_prune_prints_what_it_would_delete_then_what_it_deleted(database_url: str) -> None:
    asyncio.run(record_refusal(database_url, datetime.now(UTC) - timedelta(days=45)))
    environment = {"LEDGER_DATABASE_URL": database_url}

    dry = invoice_ledger(
        "prune", "--older-than", "30", "--dry-run", "--json", environment=environment
    )
    assert dry.returncode == 0, dry.stderr
    dry_document = printed_document(dry)
    assert dry_document["dryRun"] is True
    assert dry_document["outcomes"] == [{"outcome": "refused", "rows": 1, "complete": True}]
    cutoff = datetime.fromisoformat(dry_document["receivedBefore"])
    assert timedelta(days=30) - timedelta(minutes=1) < datetime.now(UTC) - cutoff

    done = invoice_ledger("prune", "--older-than", "30", "--json", environment=environment)
    assert done.returncode == 0, done.stderr
    done_document = printed_document(done)
    assert done_document["dryRun"] is False
    assert done_document["outcomes"] == [{"outcome": "refused", "rows": 1, "complete": True}]


def test_reconcile_forever_refuses_json() -> None:
    result = invoice_ledger("reconcile", "--forever", "--json", environment={})
    assert result.returncode == 2
    assert "--json goes with --invoice or --sweep" in result.stderr.decode()
    assert result.stdout == b""


async def record_refusal(database_url: str, received_at: datetime) -> None:
    engine = create_engine(resolve_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(inbox).values(
                    received_at=received_at, outcome=InboxOutcome.REJECTED.value, body=None
                )
            )
    finally:
        await engine.dispose()
