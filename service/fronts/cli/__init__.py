"""The ``invoice-ledger`` command line: one click group, a module per family of commands."""

from __future__ import annotations

import click

from service.fronts.cli.common import LedgerCommands
from service.fronts.cli.deliveries import deliveries
from service.fronts.cli.exports import exports
from service.fronts.cli.keys import keys
from service.fronts.cli.personal_data import erase, personal_data
from service.fronts.cli.projection import project, rebuild
from service.fronts.cli.reconciliation import reconcile
from service.fronts.cli.records import events, prune
from service.fronts.cli.serving import migrate, serve
from service.fronts.cli.subscription import subscribe
from service.fronts.cli.trying import sandbox, sign_webhook

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the operation ran and failed as asked (a delivery that still does"
    " not read, a reconciliation with failures); 2 usage, configuration or database problem"
    " (an invalid option or choice, an unreachable or unmigrated database)."
)


@click.group(
    cls=LedgerCommands,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(package_name="invoice-ledger", prog_name="invoice-ledger")
@click.option("--debug", is_flag=True, help="Show the traceback of a database problem.")
@click.option(
    "--strict-settings",
    is_flag=True,
    help="Refuse to start when a LEDGER_* variable names no setting (LEDGER_STRICT_SETTINGS).",
)
def main(debug: bool, strict_settings: bool) -> None:
    """A ledger of Cybersource invoices, fed by verified webhooks.

    Configuration comes from LEDGER_* environment variables (see docs/configuration.md).
    """


for command in (
    migrate,
    serve,
    prune,
    project,
    rebuild,
    reconcile,
    subscribe,
    sandbox,
    events,
    sign_webhook,
    deliveries,
    exports,
    keys,
    erase,
    personal_data,
):
    main.add_command(command)
