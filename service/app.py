"""The served application: the webhook receiver, the query API, the console and the
operations routes over one ledger (service/bootstrap.py builds it), with the lifespan that
releases it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.bootstrap import serving_ledger
from service.configured_keys import merchants_credentials
from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import CertifiedKey
from service.fronts.api.accounting_exports import AccountingExportApi
from service.fronts.api.contract import ApiRoute, declared_operations, openapi_document
from service.fronts.api.deliveries import DeliveryApi
from service.fronts.api.routes import QueryApi
from service.fronts.api.webhook_operation import WEBHOOK_OPERATIONS
from service.fronts.auth import ApiAuthorizer, AuthSurface
from service.fronts.console.routes import Console
from service.fronts.errors import ApiError
from service.fronts.failure_throttle import FailureThrottle
from service.fronts.merchant_scope import MerchantOrganizations
from service.fronts.request_metrics import RequestMetrics
from service.http_server import WORKERS_SHARE_OF_GRACE
from service.ingest.receiver import WebhookReceiver
from service.metrics import LedgerMetrics
from service.operations import api_error, operations_routes, try_again_later
from service.settings import Settings
from service.store.errors import StoreUnavailable
from service.workers.runner import BackgroundWorkers
from service.workers.serving import ServingWorkers

log = structlog.get_logger("service.app")
WEBHOOK_PATH = "/webhooks/cybersource"


def create_app(settings: Settings, *, clock: Callable[[], float] | None = None) -> Starlette:
    ledger = serving_ledger(settings)
    metrics = ledger.metrics
    committer = ledger.committer()
    receiver = ledger.receiver(committer, clock)
    merchants = MerchantOrganizations(
        {account.merchant_id: account.organizations for account in settings.merchant_accounts}
    )
    authorizer = _authorizer(settings, metrics, merchants)
    _export_expiries(settings, metrics, ledger.notification_decryption.keyring.keys)
    serving_workers = ServingWorkers(ledger)
    workers = BackgroundWorkers(serving_workers.factories())
    query_api = QueryApi(
        ledger.queries, ledger.event_store, ledger.read_models, authorizer, merchants
    )
    delivery_api = DeliveryApi(
        ledger.delivery_log,
        ledger.replayer,
        ledger.corrections,
        ledger.resolver,
        authorizer,
        items_per_delivery_max=settings.webhook_items_max,
    )
    accounting_api = AccountingExportApi(ledger.accounting_exports, authorizer, merchants)
    console = Console(ledger, authorizer, merchants)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The workers are not started here: the lifespan runs before the port is bound, and
        # a server that cannot listen must not have written anything. LedgerServer starts
        # them once it listens, and stops them before draining requests.
        _warn_about_open_doors(settings, authorizer)
        log.info(
            "service.started",
            database=ledger.engine.dialect.name,
            key_ids=sorted(settings.webhook_keys_by_id),
            merchants=[account.merchant_id for account in settings.merchant_accounts],
            decryption_kids=ledger.notification_decryption.keyring.kids,
            signed_content=settings.webhook_signed_content,
            projector=settings.projector_enabled,
        )
        # Everything built so far lives as long as the process: keep the collector from
        # re-scanning it on every collection of the request path's short-lived objects.
        gc.freeze()
        try:
            yield
        finally:
            # Normally stopped already by the server; this covers any other host of the app.
            await workers.stop(settings.shutdown_grace_seconds * WORKERS_SHARE_OF_GRACE)
            log.info("service.stopping")
            # Requests have drained: append what is still queued, fail the rest with 503.
            await committer.close(settings.shutdown_grace_seconds * WORKERS_SHARE_OF_GRACE)
            await receiver.aclose()
            await ledger.engine.dispose()

    app = Starlette(
        routes=[
            ApiRoute(
                WEBHOOK_PATH,
                receiver.endpoint,
                methods=["GET", "HEAD", "POST"],
                operations=WEBHOOK_OPERATIONS,
            ),
            *query_api.routes(),
            *delivery_api.routes(),
            *accounting_api.routes(),
            *console.routes(),
            *operations_routes(ledger, serving_workers, lambda: app.state.openapi),
        ],
        exception_handlers={StoreUnavailable: try_again_later, ApiError: api_error},
        middleware=[
            Middleware(
                RequestMetrics,
                metrics=metrics,
                access_log=settings.access_log,
                direct={("POST", WEBHOOK_PATH): _webhook_post(receiver)},
            )
        ],
        lifespan=lifespan,
    )
    app.state.ledger = ledger
    app.state.workers = workers
    # Generated from the routes that declare their operations: it describes what is served.
    app.state.openapi = openapi_document(
        declared_operations(app.routes),
        title="invoice-ledger",
        version="1.0",
        description="A ledger of Cybersource invoices: verified webhooks in, invoice state "
        "and reports out.",
    )
    return app


def _webhook_post(receiver: WebhookReceiver) -> ASGIApp:
    """The webhook's POST as the router would serve it, without the router: the same answer
    to a database that is away (``try_again_later``); anything else raised reaches the
    server-error layer, as from any route."""

    async def webhook_post(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receiver.handle(scope, receive, send)
        except StoreUnavailable as error:
            # Raised before anything is sent: the answer is still to be given.
            response = await try_again_later(Request(scope), error)
            await response(scope, receive, send)

    return webhook_post


def _export_expiries(
    settings: Settings, metrics: LedgerMetrics, decryption_keys: Sequence[CertifiedKey]
) -> None:
    """When the keys the ledger holds expire, for the expiry alerts."""
    if settings.webhook_key_expires_at is not None:
        metrics.webhook_key_expiry_timestamp_seconds.set(
            settings.webhook_key_expires_at.timestamp()
        )
    certificates = [("notification_decryption", key) for key in decryption_keys]
    for credentials in merchants_credentials(settings).values():
        if isinstance(credentials, CertificateCredentials):
            certificates.append(("rest_authentication", credentials.key))
    for use, key in certificates:
        if key.not_after is not None:
            metrics.certificate_expiry_timestamp_seconds.labels(use, key.kid).set(
                key.not_after.timestamp()
            )


def _authorizer(
    settings: Settings, metrics: LedgerMetrics, merchants: MerchantOrganizations
) -> ApiAuthorizer:
    failures = {surface: metrics.auth_failures.labels(surface.value) for surface in AuthSurface}
    limits = settings.api_tokens.merchants_by_token
    return ApiAuthorizer(
        settings.api_tokens.tokens,
        organizations_by_token={
            token: merchants.limited_to(names) for token, names in limits.items()
        },
        operator_tokens=settings.api_tokens.operator_tokens,
        allow_anonymous=settings.api_allow_anonymous,
        throttle=FailureThrottle(settings.auth_failures_max, settings.auth_failure_window_seconds),
        on_failure=lambda surface: failures[surface].inc(),
    )


def _warn_about_open_doors(settings: Settings, authorizer: ApiAuthorizer) -> None:
    if not settings.webhook_keys_by_id:
        log.warning(
            "webhook.no_keys",
            detail="no webhook key is configured (LEDGER_WEBHOOK_KEYS, or a merchant's"
            " webhook_keys): every delivery is refused",
        )
    if authorizer.anonymous:
        log.warning(
            "api.anonymous",
            detail="LEDGER_API_ALLOW_ANONYMOUS=true and no LEDGER_API_TOKENS: /v1 answers"
            " every client",
        )
    elif authorizer.loopback_only:
        log.warning(
            "api.no_tokens",
            detail="LEDGER_API_TOKENS is empty: /v1 answers loopback clients only, and none"
            " that came through a proxy",
        )
