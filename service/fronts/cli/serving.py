"""``migrate`` and ``serve``."""

from __future__ import annotations

import asyncio

import click
import structlog

from service.app import create_app
from service.bootstrap import (
    database_url,
    http_implementation,
    http_limits,
    verify_personal_data_key,
)
from service.client_slots import SlotRefusal
from service.fronts.cli.common import (
    command_settings,
    fail,
)
from service.http_server import (
    LedgerServer,
    ListenFailed,
    bind_listener,
    is_loopback_host,
    server_config,
)
from service.port_split import PortSplit
from service.store.migrations import upgrade_to_head

log = structlog.get_logger("service.fronts.cli")


@click.command()
def migrate() -> None:
    """Apply database migrations to LEDGER_DATABASE_URL (safe to run again)."""
    settings = command_settings()
    url = database_url(settings)
    upgrade_to_head(url.render_as_string(hide_password=False))
    # A log line, like everything a deployed migration Job writes to stderr.
    log.info("migrate.at_head", database=url.render_as_string(hide_password=True))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The webhook port (with --internal-port, it serves the webhook and the probes alone).",
)
@click.option(
    "--internal-port",
    type=click.IntRange(1, 65535),
    help="Serve /v1, /console, /metrics and /openapi.json on this port instead, off the"
    " webhook port (default: LEDGER_INTERNAL_PORT; unset, everything on --port).",
)
def serve(host: str, port: int, internal_port: int | None) -> None:
    """Serve the webhook receiver, the query API and operations endpoints.

    Run `migrate` first: the service refuses to report ready on an outdated schema.
    Beyond loopback, /v1 needs LEDGER_API_TOKENS (or LEDGER_API_ALLOW_ANONYMOUS=true).
    SIGTERM or SIGINT stops it within LEDGER_SHUTDOWN_GRACE_SECONDS; a second one at once.
    """
    settings = command_settings()
    internal_port = internal_port or settings.internal_port
    if internal_port == port:
        fail(f"--internal-port {internal_port} is the webhook port: give another one")
    tokens = settings.api_tokens
    if not is_loopback_host(host) and not (tokens.tokens or tokens.operator_tokens):
        if not settings.api_allow_anonymous:
            fail(
                f"refusing to serve /v1 without tokens on {host}, beyond loopback: set"
                " LEDGER_API_TOKENS, or LEDGER_API_ALLOW_ANONYMOUS=true to open /v1 to every"
                " client"
            )
        log.warning(
            "serve.anonymous_api",
            host=host,
            detail="LEDGER_API_ALLOW_ANONYMOUS=true: /v1 answers every client without a token",
        )
    listeners = []
    try:
        # Bound before the app exists: a port in use stops here, before any database work.
        for listening_port in (port, internal_port) if internal_port else (port,):
            listeners.append(bind_listener(host, listening_port))
    except ListenFailed as failure:
        for listener in listeners:
            listener.close()
        fail(str(failure))
    # A wrong master key stops here, before anything is sealed under it or shown garbled.
    asyncio.run(verify_personal_data_key(settings))
    app = create_app(settings)
    refused = app.state.ledger.metrics.http_refused
    for refusal in SlotRefusal:
        refused.labels(refusal.value)  # every series from zero, for a rate to see the first
    config = server_config(
        PortSplit(app, internal_port=internal_port) if internal_port else app,
        host=host,
        port=port,
        implementation=http_implementation(settings),
        limits=http_limits(settings),
        on_refusal=lambda refusal: refused.labels(refusal.value).inc(),
    )
    server = LedgerServer(config, app.state.workers, settings.shutdown_grace_seconds)
    try:
        server.run(sockets=listeners)
    finally:
        for listener in listeners:
            listener.close()
