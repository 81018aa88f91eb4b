"""``erase`` and ``personal-data``: forgetting a payer, and sealing what was recorded in clear.

Both need LEDGER_PERSONAL_DATA_KEY (docs/personal-data.md); without it they refuse, naming it.
"""

from __future__ import annotations

import asyncio
import getpass

import click

from service.bootstrap import Ledger, command_ledger
from service.fronts.cli.common import JSON_HELP, command_settings, fail, print_json
from service.settings import Settings
from service.store.personal_data.data_keys import PersonalDataKeyMissing
from service.store.personal_data.erasure import Erasure, ErasureRefused, erase_payer
from service.store.personal_data.recorded_facts import (
    BATCH_SIZE_DEFAULT,
    BATCH_SIZE_MAX,
    SealingProgress,
    seal_recorded_facts,
)


@click.command()
@click.option("--customer-email", metavar="EMAIL", help="The payer's email (any case).")
@click.option(
    "--customer-name",
    metavar="NAME",
    help="The payer's name, for facts that state no email (a separate identity).",
)
@click.option("--reason", required=True, help="Why (recorded in the audit trail, ≤ 500 chars).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def erase(
    customer_email: str | None, customer_name: str | None, reason: str, as_json: bool
) -> None:
    """Erase a payer's personal data: their name and email become unreadable in every fact,
    read model, answer and rebuild, and the delivery bodies naming them are redacted.

    Amounts, statuses, balances, reports and the audit trail stay as they were. An erasure
    fact (the payer's keyed hash and the reason, never the email) is recorded per invoice.
    """
    settings = command_settings()
    if (customer_email is None) == (customer_name is None):
        fail("give exactly one of --customer-email and --customer-name")
    try:
        erasure, projected = asyncio.run(_erase(settings, customer_email, customer_name, reason))
    except (PersonalDataKeyMissing, ErasureRefused) as refused:
        fail(str(refused))
    if as_json:
        print_json(
            {
                "payer": erasure.payer,
                "facts": erasure.facts,
                "invoices": erasure.invoices,
                "deliveriesRedacted": erasure.deliveries_redacted,
                "encryptedBodiesUnsearched": erasure.encrypted_bodies_unsearched,
                "keyDeleted": erasure.key_deleted,
                "positions": list(erasure.positions),
                "readModelsUpdated": projected,
            }
        )
        return
    click.echo(
        f"erased payer {erasure.payer[:12]}…: {erasure.facts} facts on {erasure.invoices}"
        f" invoices, {erasure.deliveries_redacted} delivery bodies redacted,"
        f" data key {'deleted' if erasure.key_deleted else 'already gone'}",
        err=True,
    )
    if erasure.encrypted_bodies_unsearched:
        click.echo(
            f"{erasure.encrypted_bodies_unsearched} encrypted delivery bodies no configured key"
            " opens were not searched: configure their keys"
            " (LEDGER_NOTIFICATION_DECRYPTION_KEYS) and erase again",
            err=True,
        )
    if not projected:
        click.echo(
            "the projector serving the ledger applies it to the read models (or run"
            " invoice-ledger project --once)",
            err=True,
        )


async def _erase(
    settings: Settings, email: str | None, name: str | None, reason: str
) -> tuple[Erasure, bool]:
    async with command_ledger(settings, pool_size=2) as ledger:
        erasure = await erase_payer(
            ledger.engine,
            ledger.data_keys,
            ledger.event_store,
            email=email,
            name=name,
            reason=reason,
            recorded_by=f"cli:{getpass.getuser()}",
            clear_body=ledger.notification_decryption.keyring.clear_body,
        )
        return erasure, await _project_if_free(ledger)


async def _project_if_free(ledger: Ledger) -> bool:
    """Fold the erasure into the read models now, unless a serving projector holds the lease
    (it then does, within its next poll)."""
    projector = ledger.projector()
    if not await projector.take_lease():
        return False
    try:
        await projector.catch_up()
    finally:
        await projector.release_lease()
    return True


@click.group("personal-data")
def personal_data() -> None:
    """Personal data sealed under LEDGER_PERSONAL_DATA_KEY (docs/personal-data.md)."""


@personal_data.command()
@click.option(
    "--after-position",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Start after this event position (a stopped run prints where it got to).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, BATCH_SIZE_MAX),
    default=BATCH_SIZE_DEFAULT,
    show_default=True,
    help="Events per transaction.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def encrypt(after_position: int, batch_size: int, as_json: bool) -> None:
    """Seal the names and emails of facts recorded in clear (before the key was set).

    Safe beside `serve` and safe to stop: each batch is its own short transaction, sealed
    facts are passed over, and a run can start again anywhere (--after-position).
    """
    settings = command_settings()
    try:
        progress = asyncio.run(_encrypt(settings, after_position, batch_size))
    except PersonalDataKeyMissing as missing:
        fail(str(missing))
    if as_json:
        print_json(
            {
                "scanned": progress.scanned,
                "sealed": progress.sealed,
                "lastPosition": progress.last_position,
                "digestsUnmatched": progress.digests_unmatched,
            }
        )
        return
    click.echo(
        f"sealed {progress.sealed} of {progress.scanned} facts read, up to position"
        f" {progress.last_position}",
        err=True,
    )


async def _encrypt(settings: Settings, after_position: int, batch_size: int) -> SealingProgress:
    async with command_ledger(settings, pool_size=2) as ledger:
        master = ledger.data_keys.master
        if master is None:
            raise PersonalDataKeyMissing("sealing the facts recorded in clear")

        def report(progress: SealingProgress) -> None:
            click.echo(f"… position {progress.last_position}: {progress.sealed} sealed", err=True)

        return await seal_recorded_facts(
            ledger.engine,
            master,
            after_position=after_position,
            batch_size=batch_size,
            on_batch=report,
        )
