"""``invoice-ledger deliveries``: the delivery log, replays and corrections, for operators.

The command works on the database directly, as an operator: it shows bodies when asked
(``--body``), and its replays and corrections are recorded as made by ``cli:<user>``.
``--json`` prints the same documents, in the same camelCase, as ``/v1/deliveries``.

Exit codes: 0 done (a replayed delivery reads, appended or duplicate); 1 the delivery does
not read, cannot be replayed or corrected, or is unknown; 2 usage or configuration errors.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from service.bootstrap import command_ledger
from service.fronts.cli.common import command_settings, fail
from service.ingest.corrections import CorrectionRefused, DeliveryCorrections
from service.ingest.delivery_documents import (
    DeliveryDetail,
    DeliveryList,
    compared_fields,
    detail,
    replay_answer,
    resolved,
    summaries,
)
from service.ingest.replay import (
    REPLAYS_PER_RUN_MAX_DEFAULT,
    DeliveryReplayer,
    NotReplayable,
    ReplayOutcome,
    UnknownDelivery,
)
from service.ingest.resolutions import DeliveryResolver, ResolutionRefused
from service.read.cursors import (
    DELIVERY_ID_MAX,
    UnreadableCursor,
    decode_delivery_cursor,
    encode_delivery_cursor,
)
from service.read.instants import parse_instant
from service.settings import Settings
from service.store.delivery_log import PAGE_SIZE_MAX, DeliveryFilters, SqlDeliveryLog
from service.store.delivery_queue import ResolutionRow
from service.store.schema import InboxOutcome

Result = TypeVar("Result")
CELL_WIDTH_MAX = 40


@dataclass(frozen=True)
class _Tools:
    settings: Settings
    log: SqlDeliveryLog
    replayer: DeliveryReplayer
    corrections: DeliveryCorrections
    resolver: DeliveryResolver


@asynccontextmanager
async def _tools() -> AsyncIterator[_Tools]:
    settings = command_settings()
    async with command_ledger(settings, pool_size=2) as ledger:
        yield _Tools(
            settings, ledger.delivery_log, ledger.replayer, ledger.corrections, ledger.resolver
        )


def _run(work: Callable[[_Tools], Awaitable[Result]]) -> Result:
    async def run() -> Result:
        async with _tools() as tools:
            return await work(tools)

    return asyncio.run(run())


def _acting_on(
    delivery_id: int | None,
    work: Callable[[_Tools], Awaitable[Result]],
    refusal: type[NotReplayable | CorrectionRefused | ResolutionRefused],
    refused_as: str,
) -> Result:
    """``work`` on a delivery; an unknown delivery or a refusal ends the command with 1."""
    try:
        return _run(work)
    except UnknownDelivery:
        fail(f"no delivery {delivery_id}", 1)
    except refusal as refused:
        fail(f"delivery {delivery_id} {refused_as} ({refused.code}): {refused.detail}", 1)


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO-8601 instant with an offset, or a day (its midnight in UTC)."""
    if value is None:
        return None
    try:
        if len(value) == len("2026-01-31"):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        return parse_instant(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r}: {error}") from None


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--outcome", type=click.Choice([outcome.value for outcome in InboxOutcome])),
        click.option("--event-type", help="e.g. invoicing.customer.invoice.paid"),
        click.option("--organization", help="The organization id the delivery names."),
        click.option("--notification-id"),
        click.option("--invoice", help="Deliveries that produced a fact of this invoice number."),
        click.option("--since", callback=_instant, help="Received at or after (ISO-8601)."),
        click.option("--until", callback=_instant, help="Received before (ISO-8601)."),
        click.option("--reason", help="Reasons starting with this, e.g. unusable_body."),
        click.option(
            "--waiting",
            is_flag=True,
            help="Only dead letters and conflicts that wait for an operator.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(options: Mapping[str, Any]) -> DeliveryFilters:
    return DeliveryFilters(
        outcome=InboxOutcome(options["outcome"]) if options["outcome"] else None,
        event_type=options["event_type"],
        organization_id=options["organization"],
        notification_id=options["notification_id"],
        received_from=options["since"],
        received_to=options["until"],
        reason_prefix=options["reason"],
        waiting=options["waiting"],
        invoice_number=options["invoice"],
    )


def _print_json(document: BaseModel | list[BaseModel]) -> None:
    if isinstance(document, list):
        value: Any = [item.model_dump(mode="json", by_alias=True) for item in document]
    else:
        value = document.model_dump(mode="json", by_alias=True)
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


# A delivery id as the database holds it (64 bits): a larger one is a usage error.
DELIVERY_ID = click.IntRange(1, DELIVERY_ID_MAX)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def deliveries() -> None:
    """The delivery log: list, show, replay dead letters, correct or resolve conflicts.

    Exit codes: 0 done; 1 a delivery does not read, cannot be replayed, corrected or
    resolved, or is unknown; 2 usage or configuration errors.
    """


# The tab-separated columns `deliveries list` prints, in its header row.
LIST_COLUMNS = ("id", "received", "outcome", "event_type", "notification_id", "reason")


@deliveries.command("list")
@_filter_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, PAGE_SIZE_MAX))
@click.option("--cursor", help="The nextCursor of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print the /v1/deliveries document.")
def list_deliveries(limit: int, cursor: str | None, as_json: bool, **options: Any) -> None:
    """Deliveries, newest first."""
    try:
        before = decode_delivery_cursor(cursor) if cursor else None
    except UnreadableCursor:
        problem = "is not a cursor this command printed"
        raise click.BadParameter(problem, param_hint="--cursor") from None

    async def work(tools: _Tools) -> DeliveryList:
        rows = await tools.log.deliveries(_filters(options), limit, before)
        next_cursor = encode_delivery_cursor(rows[-1].delivery_id) if len(rows) == limit else None
        return DeliveryList(
            items=await summaries(rows, tools.log),
            next_cursor=next_cursor,
        )

    listed = _run(work)
    if as_json:
        _print_json(listed)
        return
    if listed.items:
        click.echo("\t".join(LIST_COLUMNS))
    for item in listed.items:
        replayed = f" replayed:{item.last_replay.result.value}" if item.last_replay else ""
        click.echo(
            f"{item.delivery_id}\t{item.received_at.isoformat()}\t{item.outcome.value}"
            f"\t{item.event_type or '-'}\t{item.notification_id or '-'}"
            f"\t{item.reason or ''}{replayed}"
        )
    if not listed.items:
        click.echo("no deliveries", err=True)


@deliveries.command()
@click.argument("delivery_id", type=DELIVERY_ID)
@click.option("--body", "with_body", is_flag=True, help="Also print the raw body.")
@click.option("--json", "as_json", is_flag=True, help="Print the /v1/deliveries/{id} document.")
def show(delivery_id: int, with_body: bool, as_json: bool) -> None:
    """One delivery: headers, outcome, facts, replays; a conflict's two versions side by side."""

    async def work(tools: _Tools) -> DeliveryDetail | None:
        row = await tools.log.delivery(delivery_id, with_body=True)
        if row is None:
            return None
        return await detail(
            row,
            tools.log,
            tools.corrections,
            items_per_delivery_max=tools.settings.webhook_items_max,
            with_body=with_body,
        )

    shown = _run(work)
    if shown is None:
        fail(f"no delivery {delivery_id}", 1)
    if as_json:
        _print_json(shown)
        return
    _print_detail(shown)


def _print_detail(shown: DeliveryDetail) -> None:
    fields = shown.model_dump(mode="json", by_alias=True)
    for name in ("headers", "positions", "replays", "conflicts", "body", "lastReplay"):
        fields.pop(name)
    for name, value in fields.items():
        click.echo(f"{name}: {'' if value is None else value}")
    for name, value in shown.headers.items():
        click.echo(f"header {name}: {value}")
    click.echo(f"positions: {', '.join(map(str, shown.positions)) or '-'}")
    for replay in shown.replays:
        click.echo(
            f"replay {replay.replayed_at.isoformat()} by {replay.replayed_by}: "
            f"{replay.result.value} {replay.reason or ''} {replay.positions or ''}".rstrip()
        )
    for versions in shown.conflicts:
        click.echo("")
        click.echo(
            f"conflict on invoice {versions.recorded.invoice_number}"
            f" (recorded at position {versions.recorded.position}):"
        )
        compared = compared_fields(versions.recorded.data, versions.delivered.data)
        rows = [("field", "recorded", "this delivery")]
        rows += [(field.name, _cell(field.recorded), _cell(field.delivered)) for field in compared]
        differs = [False, *(field.differs for field in compared)]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for (name, left, right), different in zip(rows, differs, strict=True):
            mark = "*" if different else " "
            click.echo(
                f"{mark} {name:<{widths[0]}}  {left:<{widths[1]}}  {right:<{widths[2]}}".rstrip()
            )
    if shown.body is not None:
        click.echo("")
        click.echo(shown.body)


def _cell(text: str) -> str:
    return text if len(text) <= CELL_WIDTH_MAX else text[: CELL_WIDTH_MAX - 1] + "…"


@deliveries.command()
@click.argument("delivery_id", type=DELIVERY_ID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every replayable delivery selected.")
@_filter_options
@click.option(
    "--max",
    "replays_max",
    default=REPLAYS_PER_RUN_MAX_DEFAULT,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="With --all: at most this many replays in this run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the replay answers as JSON.")
def replay(
    delivery_id: int | None, replay_all: bool, replays_max: int, as_json: bool, **options: Any
) -> None:
    """Read a kept delivery again with today's code; append it if it now reads.

    Give a DELIVERY_ID, or --all with filters (e.g. --outcome rejected --reason
    unusable_body). Deliveries that already read on an earlier replay are passed over by
    --all. Exit 0 when every replayed delivery reads (appended or duplicate), 1 otherwise.
    """
    if (delivery_id is None) == (not replay_all):
        raise click.UsageError("give a DELIVERY_ID or --all, not both")
    if delivery_id is not None and any(value not in (None, False) for value in options.values()):
        raise click.UsageError("filters go with --all")
    who = _operator()

    async def work(tools: _Tools) -> list[ReplayOutcome]:
        if delivery_id is not None:
            return [await tools.replayer.replay(delivery_id, who)]
        outcomes = []
        async for outcome in tools.replayer.replay_all(
            _filters(options), who, replays_max=replays_max
        ):
            outcomes.append(outcome)
            if not as_json:
                _print_outcome(outcome)
        return outcomes

    outcomes = _acting_on(delivery_id, work, NotReplayable, "cannot be replayed")
    if as_json and delivery_id is not None:
        _print_json(replay_answer(outcomes[0]))  # the document POST .../replay answers
    elif as_json:
        _print_json([replay_answer(outcome) for outcome in outcomes])
    elif delivery_id is not None:
        _print_outcome(outcomes[0])
    else:
        reading = sum(outcome.reads for outcome in outcomes)
        click.echo(
            f"{len(outcomes)} replayed: {reading} read, {len(outcomes) - reading} did not",
            err=True,
        )
    if not all(outcome.reads for outcome in outcomes):
        sys.exit(1)


def _print_outcome(outcome: ReplayOutcome) -> None:
    positions = ", ".join(map(str, outcome.positions))
    if outcome.reads:
        click.echo(
            f"delivery {outcome.delivery_id}: {outcome.result.value} at position(s) {positions}"
        )
    else:
        click.echo(
            f"delivery {outcome.delivery_id}: {outcome.result.value}: {outcome.reason}", err=True
        )


@deliveries.command()
@click.argument("delivery_id", type=DELIVERY_ID)
@click.option("--reason", required=True, help="Why this delivery's version is the right one.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def correct(delivery_id: int, reason: str, as_json: bool) -> None:
    """Record a conflicting delivery's version as a correction (a new operator event)."""
    who = _operator()

    async def work(tools: _Tools) -> ReplayOutcome:
        return await tools.corrections.correct(delivery_id, reason, who)

    outcome = _acting_on(delivery_id, work, CorrectionRefused, "is not corrected")
    if as_json:
        _print_json(replay_answer(outcome))
    else:
        positions = ", ".join(map(str, outcome.positions))
        click.echo(
            f"delivery {delivery_id}: correction {outcome.result.value} at position(s) {positions}"
        )


@deliveries.command()
@click.argument("delivery_id", type=DELIVERY_ID)
@click.option("--reason", required=True, help="Why it needs nothing more.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def resolve(delivery_id: int, reason: str, as_json: bool) -> None:
    """Record that a waiting dead letter or conflict needs nothing more (once, with a reason)."""
    who = _operator()

    async def work(tools: _Tools) -> ResolutionRow:
        return await tools.resolver.resolve(delivery_id, reason, who)

    resolution = _acting_on(delivery_id, work, ResolutionRefused, "is not resolved")
    if as_json:
        _print_json(resolved(resolution))
    else:
        click.echo(f"delivery {delivery_id}: resolved by {resolution.resolved_by}")
