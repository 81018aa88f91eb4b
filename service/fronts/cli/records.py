"""``events`` and ``prune``: what the ledger keeps, read and retained."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import click

from service.bootstrap import (
    command_ledger,
)
from service.domain.events import RecordedEvent
from service.fronts.cli.common import (
    JSON_HELP,
    command_settings,
    print_json,
)
from service.read.documents import event_document
from service.settings import (
    Settings,
)
from service.store.retention import PrunableKind, count_prunable
from service.store.retention import prune as prune_inbox


@click.command()
@click.option(
    "--older-than",
    "older_than_days",
    required=True,
    type=click.IntRange(1, 36_500),
    metavar="DAYS",
    help="Delete rows received more than DAYS days ago.",
)
@click.option(
    "--outcome",
    "kinds",
    multiple=True,
    type=click.Choice([kind.value for kind in PrunableKind]),
    default=[PrunableKind.REFUSED.value],
    show_default=True,
    help="Which rows (repeatable): refused deliveries (401/408/413, no body), or accepted,"
    " duplicate, ignored ones, whose facts are in the event store. Dead letters, conflicts"
    " and events are never pruned.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def prune(older_than_days: int, kinds: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Delete inbox rows past their retention, oldest first, in bounded batches.

    The serving process applies LEDGER_RETENTION_REFUSED_DAYS and
    LEDGER_RETENTION_ACCEPTED_DAYS on its own; this command is for a one-off run.
    """
    settings = command_settings()
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    chosen = [PrunableKind(kind) for kind in dict.fromkeys(kinds)]
    results = asyncio.run(_prune(settings, chosen, cutoff, dry_run))
    if as_json:
        print_json(
            {
                "dryRun": dry_run,
                "receivedBefore": cutoff.isoformat(),
                "outcomes": [
                    {"outcome": kind.value, "rows": rows, "complete": complete}
                    for kind, rows, complete in results
                ],
            }
        )
        return
    for kind, rows, complete in results:
        verb = "would delete" if dry_run else "deleted"
        more = "" if complete else " (more remain: run again)"
        click.echo(f"{kind.value}: {verb} {rows} rows received before {cutoff.isoformat()}{more}")


async def _prune(
    settings: Settings, kinds: list[PrunableKind], cutoff: datetime, dry_run: bool
) -> list[tuple[PrunableKind, int, bool]]:
    async with command_ledger(settings, pool_size=1) as ledger:
        results = []
        for kind in kinds:
            if dry_run:
                results.append((kind, await count_prunable(ledger.engine, kind, cutoff), True))
            else:
                pruned = await prune_inbox(ledger.engine, kind, cutoff)
                results.append((kind, pruned.rows, pruned.complete))
        return results


@click.command()
@click.option("--invoice", "stream_id", help="Only this invoice's events, in version order.")
@click.option(
    "--after",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Only after this position.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def events(stream_id: str | None, after: int, limit: int) -> None:
    """Print recorded events as JSON lines, in position order (the audit trail).

    Each line is the API's event document (camelCase, as ``/v1/invoices/{n}/events``) with the
    stream, version and idempotency key the store keeps beside it.
    """
    settings = command_settings()
    for event in asyncio.run(_read_events(settings, stream_id, after, limit)):
        record = {
            "streamId": event.stream_id,
            "version": event.version,
            "schemaVersion": event.schema_version,
            "idempotencyKey": event.idempotency_key,
            **event_document(event).model_dump(mode="json"),
        }
        click.echo(json.dumps(record, ensure_ascii=False))


async def _read_events(
    settings: Settings, stream_id: str | None, after: int, limit: int
) -> list[RecordedEvent]:
    async with command_ledger(settings, pool_size=1) as ledger:
        store = ledger.event_store
        if stream_id is not None:
            return [e for e in await store.read_stream(stream_id) if e.position > after][:limit]
        return await store.read_after(after, limit)
