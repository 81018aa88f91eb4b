"""``POST /webhooks/cybersource``: verify, record, acknowledge. Nothing else on the write path.

Every answer is a promise to Cybersource: 200 only once the notification is durably in the
event store (or provably already there); 503 while the database is away so it retries, and
while the payload-form check is saturated (``payload_forms.py``); 401 for a signature that
cannot be trusted; 422, with the body kept as a dead letter, for a signed body the ledger
cannot read.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from service.cybersource.envelope import DeliveryHeaders, dead_letter_identifiers
from service.cybersource.webhook_signature import (
    SIGNATURE_HEADER,
    SignatureRejected,
    SignedContent,
    WebhookVerifier,
)
from service.ingest.decryption import NotificationDecryption, Opened, VerifiedDelivery
from service.ingest.notification import kept_headers
from service.ingest.payload_forms import RETRY_AFTER_SECONDS as PAYLOAD_FORMS_RETRY_SECONDS
from service.ingest.payload_forms import PayloadFormsBusy, PayloadFormWorker
from service.ingest.reading import (
    Contradiction,
    ForeignOrganization,
    Ignored,
    Undecrypted,
    Unreadable,
    read_delivery,
)
from service.ingest.token_bucket import TokenBucket
from service.metrics import LedgerMetrics
from service.store.errors import StoreUnavailable, is_unavailability
from service.store.events.base import Appender, EventStore, InboxEntry, delivery_outcome
from service.store.schema import InboxOutcome

# The deliveries metric's outcome for a signed body kept unread for an operator; the inbox
# records it as rejected (with its body), beside refusals (without one).
DEAD_LETTER = "dead_letter"
log = structlog.get_logger("service.ingest")


# Cybersource sends one invoice per notification; a thousand leaves room for batches.
ITEMS_PER_DELIVERY_MAX_DEFAULT = 1000


class BodyTooLarge(Exception):
    pass


_CONTENT_LENGTH_PATTERN = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit accepts "²"


async def read_bounded_body(request: Request, max_body_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and _CONTENT_LENGTH_PATTERN.fullmatch(declared.strip())
        and int(declared) > max_body_bytes
    ):
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
        store: EventStore,
        metrics: LedgerMetrics,
        *,
        appender: Appender | None = None,
        max_body_bytes: int,
        body_timeout_seconds: float = 30.0,
        items_per_delivery_max: int = ITEMS_PER_DELIVERY_MAX_DEFAULT,
        clock: Callable[[], float] = time.time,
        refusals_recorded_per_second: float = 10.0,
        decryption: NotificationDecryption | None = None,
        organizations_by_key: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._verifier = verifier
        # A merchant's webhook key signs only the notifications of organizations it acts for
        # (several merchants); a key not here signs any (a single merchant's deployment).
        self._organizations_by_key = organizations_by_key or {}
        # Encrypted notifications: the keys, and what their signature covers.
        self._decryption = decryption or NotificationDecryption()
        # Started when a body first needs its payload form; stopped by aclose().
        self._payload_forms = PayloadFormWorker()
        self._store = store
        # Deliveries are appended through the group committer when the app has one.
        self._appender: Appender = store if appender is None else appender
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._body_timeout_seconds = body_timeout_seconds
        self._items_per_delivery_max = items_per_delivery_max
        self._clock = clock
        self._pinning_recommended = False
        # A flood of junk must not grow the inbox (or the logs) without bound.
        self._refusal_recording = TokenBucket(refusals_recorded_per_second)

    async def endpoint(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return JSONResponse({"status": "ok"})  # Cybersource's health check
        started = time.perf_counter()
        try:
            return await self._receive(request)
        except StoreUnavailable:
            self._metrics.store_unavailable.inc()
            raise
        except ClientDisconnect:
            # Nobody is left to answer; the sender retries what it did not see acknowledged.
            log.info("webhook.client_disconnected")
            return Response(status_code=400)
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
            headers=kept_headers(request.headers),
            organization_id=headers.organization_id,
        )
        try:
            # The header alone can be refused before a byte of the body is read.
            admitted = self._verifier.admit(request.headers.get(SIGNATURE_HEADER), int(now * 1000))
        except SignatureRejected as rejection:
            return await self._refuse(entry, rejection.reason, rejection.detail)
        try:
            # A client trickling its body would otherwise hold a connection and its buffer.
            async with asyncio.timeout(self._body_timeout_seconds):
                body = await read_bounded_body(request, self._max_body_bytes)
        except TimeoutError:
            await self._record_refusal(entry, "body_timeout")
            return _error(
                408, "body_timeout", f"the body took over {self._body_timeout_seconds:g} s to send"
            )
        except BodyTooLarge:
            await self._record_refusal(entry, "body_too_large")
            return _error(413, "body_too_large", f"the body exceeds {self._max_body_bytes} bytes")
        try:
            delivery = await self._decryption.verify(
                self._verifier, admitted, body, self._payload_forms.content
            )
        except SignatureRejected as rejection:
            return await self._refuse(entry, rejection.reason, rejection.detail)
        except PayloadFormsBusy:
            # Not judged, so not recorded: the sender retries, and a genuine delivery then
            # verifies once the flood that filled the queue has passed.
            self._metrics.payload_forms_busy.inc()
            return JSONResponse(
                {
                    "error": "payload_form_busy",
                    "detail": "too many deliveries wait for their payload-form signature check;"
                    " retry later",
                },
                status_code=503,
                headers={"Retry-After": str(PAYLOAD_FORMS_RETRY_SECONDS)},
            )

        verified = delivery.verified
        self._metrics.signed_content_matches.labels(verified.signed_content.value).inc()
        self._recommend_pinning(verified.signed_content)
        # One copy of the entry for everything the signature established (a dataclass copy
        # is among the request's costlier steps).
        entry = replace(
            entry,
            key_id=verified.key_id,
            signed_content=verified.signed_content,
            body=body,
            signed_at=datetime.fromtimestamp(verified.timestamp_ms / 1000, UTC),
        )
        try:
            return await self._record(entry, headers, delivery)
        except (StoreUnavailable, ClientDisconnect):
            raise
        except Exception as error:
            if is_unavailability(error):
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
            # A signed body must never be lost to a fault of ours: keep it for an operator.
            return await self._keep_unexpected_dead_letter(entry, error)

    async def _record(
        self, entry: InboxEntry, headers: DeliveryHeaders, delivery: VerifiedDelivery
    ) -> Response:
        verified = delivery.verified
        signed_at = entry.signed_at
        assert signed_at is not None, "a verified delivery carries its signature's time"
        opened = self._decryption.open(
            entry.body or b"",
            verified.signed_content,
            signed_at,
            payload_digest=verified.payload_digest,
            decrypted=delivery.decrypted,
        )
        self._count_decryption(opened)
        reading = (
            read_delivery(
                opened.content,
                headers,
                opened.scope,
                items_per_delivery_max=self._items_per_delivery_max,
                signed_at=signed_at,
                organizations=self._organizations_by_key.get(verified.key_id),
            )
            if isinstance(opened, Opened)
            else opened
        )
        match reading:
            case Contradiction():
                return await self._refuse(
                    replace(entry, body=None), "envelope_mismatch", reading.problem
                )
            case Unreadable() | Undecrypted() | ForeignOrganization():
                # Signed by Cybersource but unreadable: keep it whole (encrypted, as it came)
                # for an operator; the answer is the same whatever the reason.
                delivery_id = await self._store.record_inbox(
                    replace(entry, outcome=InboxOutcome.REJECTED, reason=reading.reason)
                )
                self._count(DEAD_LETTER)
                log.warning(
                    "webhook.dead_letter", key_id=verified.key_id,
                    reason=reading.reason if isinstance(reading, Undecrypted) else reading.problem,
                    delivery_id=delivery_id, **dead_letter_identifiers(entry.body or b""),
                )  # fmt: skip
                error = "foreign_organization" if isinstance(reading, ForeignOrganization) else None
                return _error(422, error or "unusable_body", reading.problem)
            case Ignored():
                await self._store.record_inbox(
                    replace(entry, outcome=InboxOutcome.IGNORED, reason=reading.reason)
                )
                self._count(InboxOutcome.IGNORED)
                log.info("webhook.ignored", event_type=reading.event_type)
                return JSONResponse({"status": InboxOutcome.IGNORED.value})
        notification, new_events = reading.notification, reading.events
        entry = replace(
            entry,
            notification_id=notification.notification_id,
            event_type=notification.event_type,
            webhook_id=notification.webhook_id,
            retry_count=notification.retry_number,
            organization_id=notification.organization_id,
        )

        results = await self._appender.append(new_events, entry)
        outcome = delivery_outcome(results)
        self._count(outcome)
        fields = {
            "notification_id": notification.notification_id,
            "claimed_notification_id": notification.claimed_notification_id,
            "event_type": notification.event_type,
            "key_id": verified.key_id,
            "signed_content": verified.signed_content.value,
            "positions": [result.position for result in results],
            "retry_count": notification.retry_number,
        }
        if outcome is InboxOutcome.CONFLICT:
            log.error("webhook.conflict", **fields)
        else:
            # DEBUG: one INFO line per delivery cost more CPU than the append's own work; the
            # deliveries metric counts them, and conflicts, dead letters and refusals are
            # still logged one by one.
            log.debug(f"webhook.{outcome.value}", **fields)
        return JSONResponse({"status": outcome.value})

    async def _keep_unexpected_dead_letter(self, entry: InboxEntry, error: Exception) -> Response:
        """Record the body with as little else as possible: the rest may be what failed."""
        reason = f"unusable_body: unexpected {type(error).__name__}"
        dead_letter = InboxEntry(
            received_at=entry.received_at,
            outcome=InboxOutcome.REJECTED,
            reason=reason,
            key_id=entry.key_id,
            signed_content=entry.signed_content,
            body=entry.body,
            headers=entry.headers,
            signed_at=entry.signed_at,
            organization_id=entry.organization_id,
        )
        try:
            delivery_id = await self._store.record_inbox(dead_letter)
        except Exception as recording_error:
            log.error("webhook.unexpected_error", key_id=entry.key_id, exc_info=error)
            # Not even the bare body could be stored: the sender must keep it and retry.
            raise StoreUnavailable("the dead letter could not be recorded") from recording_error
        log.error(
            "webhook.unexpected_dead_letter", key_id=entry.key_id, delivery_id=delivery_id,
            exc_info=error, **dead_letter_identifiers(entry.body or b""),
        )  # fmt: skip
        self._count(DEAD_LETTER)
        return _error(422, "unusable_body", "the body could not be read; it is kept for review")

    async def _refuse(self, entry: InboxEntry, reason: str, detail: str) -> Response:
        self._metrics.signature_failures.labels(reason).inc()
        await self._record_refusal(entry, reason)
        return _error(401, reason, detail)

    async def _record_refusal(self, entry: InboxEntry, reason: str) -> None:
        """An untrusted delivery leaves a trace without its body, up to a rate; past it, only
        a count. Losing the trace is tolerable: the sender was not trusted."""
        self._count(InboxOutcome.REJECTED)
        if not self._refusal_recording.try_take():
            self._metrics.refusals_not_recorded.labels(reason).inc()
            return
        try:
            await self._store.record_inbox(
                replace(entry, outcome=InboxOutcome.REJECTED, reason=reason)
            )
        except StoreUnavailable:
            log.warning("webhook.refusal_not_recorded", reason=reason)
        log.warning("webhook.refused", reason=reason)

    async def aclose(self) -> None:
        await self._payload_forms.aclose()

    def _recommend_pinning(self, form: SignedContent) -> None:
        if self._pinning_recommended or self._verifier.signed_content is not SignedContent.AUTO:
            return
        self._pinning_recommended = True
        log.warning(
            "webhook.pin_signed_content",
            form=form.value,
            detail=(
                f"a delivery verified in the {form.value} form: set"
                f" LEDGER_WEBHOOK_SIGNED_CONTENT={form.value} so that the other form is never"
                " computed"
            ),
        )

    def _count_decryption(self, opened: Opened | Undecrypted | Unreadable) -> None:
        # Only a configured key's kid is a label: a delivery's own could be anything.
        if isinstance(opened, Undecrypted):
            self._metrics.notification_decryptions.labels(opened.failure.value, "").inc()
        elif isinstance(opened, Opened) and opened.decrypted is not None:
            kid = opened.decrypted.kid
            self._metrics.notification_decryptions.labels("decrypted", kid).inc()

    def _count(self, outcome: InboxOutcome | str) -> None:
        self._metrics.deliveries.labels(str(outcome)).inc()


def _error(status_code: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status_code)
