"""``POST /webhooks/cybersource``: verify, record, acknowledge. Nothing else on the write path.

Every answer is a promise to Cybersource: 200 only once the notification is durably in the
event store (or provably already there); 503 while the database is away so it retries; 401
for a signature that cannot be trusted; 422, with the body kept as a dead letter, for a
signed body the ledger cannot read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.metrics import LedgerMetrics
from service.store.errors import StoreUnavailable
from service.store.event_store import InboxEntry, SqlEventStore, delivery_outcome
from service.store.schema import InboxOutcome
from service.webhooks.envelope import (
    DeliveryHeaders,
    UnusableBody,
    parse_body,
    read_notification,
)
from service.webhooks.signature import SIGNATURE_HEADER, SignatureRejected, WebhookVerifier
from service.webhooks.translation import UnmodelledEventType, notification_events

log = structlog.get_logger("service.webhooks")


class BodyTooLarge(Exception):
    pass


async def read_bounded_body(request: Request, max_body_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > max_body_bytes:
            raise BodyTooLarge
    return bytes(chunks)


class WebhookReceiver:
    def __init__(
        self,
        verifier: WebhookVerifier,
        store: SqlEventStore,
        metrics: LedgerMetrics,
        *,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._store = store
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    async def endpoint(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return JSONResponse({"status": "ok"})  # Cybersource's health check
        started = time.perf_counter()
        try:
            return await self._receive(request)
        except StoreUnavailable:
            self._metrics.store_unavailable.inc()
            raise
        finally:
            self._metrics.acknowledgement_seconds.observe(time.perf_counter() - started)

    async def _receive(self, request: Request) -> Response:
        now = self._clock()
        received_at = datetime.fromtimestamp(now, UTC)
        headers = DeliveryHeaders.from_mapping(request.headers)
        entry = InboxEntry(
            received_at=received_at,
            event_type=headers.event_type,
            webhook_id=headers.webhook_id,
            retry_count=headers.retry_count,
            trace_id=headers.trace_id,
        )
        try:
            body = await read_bounded_body(request, self._max_body_bytes)
        except BodyTooLarge:
            await self._record_refusal(entry, "body_too_large")
            return _error(413, "body_too_large", f"the body exceeds {self._max_body_bytes} bytes")

        try:
            verified = self._verifier.verify(
                request.headers.get(SIGNATURE_HEADER), body, int(now * 1000)
            )
        except SignatureRejected as rejection:
            self._metrics.signature_failures.labels(rejection.reason).inc()
            await self._record_refusal(entry, rejection.reason)
            return _error(401, rejection.reason, rejection.detail)

        self._metrics.signed_content_matches.labels(verified.signed_content.value).inc()
        entry = replace(
            entry, key_id=verified.key_id, signed_content=verified.signed_content, body=body
        )
        signed_at = datetime.fromtimestamp(verified.timestamp_ms / 1000, UTC)
        try:
            notification = read_notification(parse_body(body), headers)
            entry = replace(
                entry,
                notification_id=notification.notification_id,
                event_type=notification.event_type,
                webhook_id=notification.webhook_id,
                retry_count=notification.retry_number,
            )
            new_events = notification_events(notification, signed_at)
        except UnusableBody as problem:
            # Signed by Cybersource but unreadable: keep it whole for an operator.
            await self._store.record_inbox(
                replace(entry, outcome=InboxOutcome.REJECTED, reason=f"unusable_body: {problem}")
            )
            self._count(InboxOutcome.REJECTED)
            log.warning("webhook.dead_letter", reason=str(problem), key_id=verified.key_id)
            return _error(422, "unusable_body", str(problem))
        except UnmodelledEventType as unmodelled:
            await self._store.record_inbox(
                replace(entry, outcome=InboxOutcome.IGNORED, reason=f"event type {unmodelled}")
            )
            self._count(InboxOutcome.IGNORED)
            log.info("webhook.ignored", event_type=str(unmodelled))
            return JSONResponse({"status": InboxOutcome.IGNORED.value})

        results = await self._store.append(new_events, entry)
        outcome = delivery_outcome(results)
        self._count(outcome)
        fields = {
            "notification_id": notification.notification_id,
            "event_type": notification.event_type,
            "key_id": verified.key_id,
            "signed_content": verified.signed_content.value,
            "positions": [result.position for result in results],
            "retry_count": notification.retry_number,
        }
        if outcome is InboxOutcome.CONFLICT:
            log.error("webhook.conflict", **fields)
        else:
            log.info(f"webhook.{outcome.value}", **fields)
        return JSONResponse({"status": outcome.value})

    async def _record_refusal(self, entry: InboxEntry, reason: str) -> None:
        """An untrusted delivery leaves a trace without its body; losing the trace is tolerable."""
        self._count(InboxOutcome.REJECTED)
        try:
            await self._store.record_inbox(
                replace(entry, outcome=InboxOutcome.REJECTED, reason=reason)
            )
        except StoreUnavailable:
            log.warning("webhook.refusal_not_recorded", reason=reason)
        log.warning("webhook.refused", reason=reason)

    def _count(self, outcome: InboxOutcome) -> None:
        self._metrics.deliveries.labels(outcome.value).inc()


def _error(status_code: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status_code)
