"""What every command shares: its settings, its one-line failures, its JSON output."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from wsgiref.simple_server import WSGIServer

import click
import structlog
from prometheus_client import start_http_server

from service.configured_keys import MissingCredentials, merchant_credentials, notification_keyring
from service.logs import configure_logging
from service.metrics import LedgerMetrics
from service.settings import ENVIRONMENT_PREFIX, ConfigurationError, Settings, load_settings
from service.store.errors import is_sqlite_lock_timeout, is_unavailability, unavailability_reason
from service.store.migrations import SchemaNotAtHead
from service.store.personal_data.data_keys import PersonalDataKeyMismatch

log = structlog.get_logger("service.fronts.cli")

JSON_HELP = (
    "Print what was done as one JSON document on stdout (camelCase), instead of the summary line."
)


def command_settings() -> Settings:
    try:
        settings = load_settings()
        # A key file that cannot be used stops every command, naming it.
        merchant_credentials(settings)
        notification_keyring(settings)
    except ConfigurationError as error:
        fail(str(error))
    configure_logging(settings.log_level)
    unknown = unknown_variables(os.environ)
    strict = settings.strict_settings or click.get_current_context().find_root().params.get(
        "strict_settings", False
    )
    if unknown and strict:
        fail("; ".join(map(describe_unknown, unknown)) + " (strict settings)")
    for variable in unknown:
        # Names only: a value may be a secret.
        log.warning("settings.unknown_variable", variable=variable.name, closest=variable.closest)
    return settings


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit: 2 for usage, configuration or database problems."""
    click.echo(f"invoice-ledger: {message}", err=True)
    sys.exit(code)


class LedgerCommands(click.Group):
    """Commands whose database problems, or a Cybersource call without credentials, end in
    one line on stderr and exit code 2.

    ``--debug`` lets the exception through, with its traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (MissingCredentials, PersonalDataKeyMismatch, ConfigurationError) as error:
            fail(str(error))
        except Exception as error:
            problem = _database_problem(error)
            if problem is None or ctx.params.get("debug"):
                raise
            fail(f"{problem} (--debug shows the traceback)")


def _database_problem(error: Exception) -> str | None:
    """One line naming what is wrong with the database, or None for any other error."""
    if isinstance(error, SchemaNotAtHead):
        return f"{error}: run invoice-ledger migrate"
    if is_sqlite_lock_timeout(error):
        return (
            "database locked: another process (invoice-ledger serve, or another command) held"
            " SQLite's write lock for longer than this command waits (30 s; ?timeout=SECONDS on"
            " LEDGER_DATABASE_URL); run it again once the other is done"
        )
    if is_unavailability(error):
        # Connection-level reasons only: a driver's message about a statement can quote its
        # values.
        return (
            f"database unavailable: {unavailability_reason(error)}: check LEDGER_DATABASE_URL"
            " and that the database is up"
        )
    return None


def print_json(document: dict[str, Any]) -> None:
    """One document on stdout, alone: logs and progress bars go to stderr."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def export_metrics(metrics: LedgerMetrics, host: str, port: int) -> WSGIServer:
    """A worker has no HTTP server of its own: prometheus_client's serves the registry from a
    daemon thread, so Prometheus sees the worker as it sees `serve`."""
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        fail(f"cannot serve metrics on {host}:{port}: {error.strerror}")
    return server


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    name: str
    closest: str | None  # the known name it most resembles, if any


def unknown_variables(environment: Mapping[str, str]) -> list[UnknownVariable]:
    """The LEDGER_* variables no setting reads, each with the closest known name: a misspelled
    one (LEDGER_DATABSE_URL) would otherwise be ignored and its default used in silence."""
    known = sorted(ENVIRONMENT_PREFIX + name.upper() for name in Settings.model_fields)
    return [
        UnknownVariable(name, next(iter(difflib.get_close_matches(name, known, n=1)), None))
        for name in sorted(environment)
        if name.startswith(ENVIRONMENT_PREFIX) and name not in known
    ]


def describe_unknown(variable: UnknownVariable) -> str:
    hint = f" (did you mean {variable.closest}?)" if variable.closest else ""
    return f"{variable.name} is not a setting{hint}"
