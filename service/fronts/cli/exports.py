"""``invoice-ledger exports``: accounting exports, for finance's operators.

``create`` records a new export (a payments export marks what it holds as posted, as
``POST /v1/exports`` does), recorded as made by ``cli:<user>``; ``list`` shows the exports
made; ``download`` writes an export's file, the same bytes as ``GET /v1/exports/{id}``.

Exit codes: 0 done; 1 no such export, or a format that does not apply to it; 2 usage or
configuration errors.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar, cast, get_args

import click

from service.bootstrap import command_ledger
from service.fronts.cli.common import command_settings, fail, print_json
from service.read.accounting import AccountingExports, ExportKind, PeriodRefused, UnknownExport
from service.read.accounting_files import FileFormat, FormatRefused, render
from service.store.accounting_exports import (
    EXPORTS_PAGE_SIZE_MAX,
    LINES_PER_EXPORT_MAX,
    ExportTooLarge,
)

EXPORT_ID_MAX = 2**63 - 1

Result = TypeVar("Result")


def _run(work: Callable[[AccountingExports], Awaitable[Result]]) -> Result:
    async def run() -> Result:
        async with command_ledger(command_settings(), pool_size=2) as ledger:
            return await work(ledger.accounting_exports)

    return asyncio.run(run())


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _day(ctx: click.Context, param: click.Parameter, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("must be a day, YYYY-MM-DD") from None


def _currency(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # As /v1/exports: a code that names no currency would give an empty file, not an error.
    if value is not None and not (
        len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()
    ):
        raise click.BadParameter("must be a currency code, three capital letters (USD)")
    return value


def _organizations_of(merchant: str) -> frozenset[str]:
    for account in command_settings().merchant_accounts:
        if account.merchant_id == merchant:
            return frozenset(account.organizations)
    fail(f"--merchant {merchant}: no merchant of that id is configured")


@click.group()
def exports() -> None:
    """Accounting exports: the payments journal (each payment once) and the open invoices."""


@exports.command()
@click.option("--kind", type=click.Choice(get_args(ExportKind)), default="payments")
@click.option("--from", "period_from", required=True, callback=_day, help="First day (UTC).")
@click.option("--to", "period_to", required=True, callback=_day, help="Last day, inclusive.")
@click.option("--merchant", help="Only this merchant's organizations (LEDGER_MERCHANTS_FILE).")
@click.option("--json", "as_json", is_flag=True, help="Print the export's record as JSON.")
def create(
    kind: str, period_from: date, period_to: date, merchant: str | None, as_json: bool
) -> None:
    """Record a new export; a payments export marks what it holds as posted."""
    who = _operator()
    organizations = None if merchant is None else _organizations_of(merchant)
    try:
        created = _run(
            lambda accounting: accounting.create(
                cast(ExportKind, kind), period_from, period_to, who, datetime.now(UTC),
                merchant=merchant, organizations=organizations,
            )
        )  # fmt: skip
    except PeriodRefused as refused:
        fail(f"--to: {refused}")
    except ExportTooLarge:
        fail(f"--from/--to: more than {LINES_PER_EXPORT_MAX} lines: choose a shorter period")
    if as_json:
        print_json(created.model_dump(mode="json", by_alias=True))
    else:
        digest = created.content_digest
        click.echo(f"export {created.id}: {created.line_count} lines, sha256 {digest}")


@exports.command(name="list")
@click.option("--limit", type=click.IntRange(1, EXPORTS_PAGE_SIZE_MAX), default=100)
@click.option("--json", "as_json", is_flag=True, help="Print the exports as JSON.")
def list_(limit: int, as_json: bool) -> None:
    """The exports made, newest first (tab-separated under a header)."""
    found = _run(lambda accounting: accounting.exports(limit))
    if as_json:
        print_json({"items": [item.model_dump(mode="json", by_alias=True) for item in found]})
        return
    click.echo("id\tkind\tfrom\tto\tcreated_at\tcreated_by\tlines\tdigest")
    for item in found:
        click.echo(
            f"{item.id}\t{item.kind}\t{item.period_from}\t{item.period_to}\t"
            f"{item.created_at.isoformat()}\t{item.created_by}\t{item.line_count}\t"
            f"{item.content_digest}"
        )


@exports.command()
@click.argument("export_id", type=click.IntRange(1, EXPORT_ID_MAX))
@click.option(
    "--format", "file_format", type=click.Choice(get_args(FileFormat)), default="csv",
    help="csv, json, xero (bank statement) or quickbooks (3-column bank transactions).",
)  # fmt: skip
@click.option("--currency", callback=_currency, help="Only the lines in this currency (ISO 4217).")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="A file (default stdout)."
)
def download(export_id: int, file_format: str, currency: str | None, output: Path | None) -> None:
    """Write an export's file: the same bytes every time, as /v1/exports/{id} serves it."""
    try:
        export, lines = _run(lambda accounting: accounting.export(export_id))
        content = render(export, lines, cast(FileFormat, file_format), currency)
    except UnknownExport:
        fail(f"no export {export_id}", 1)
    except FormatRefused as refused:
        fail(f"--{refused.parameter}: {refused.detail}", 1)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(content)
