"""``POST /webhooks/cybersource``: verify, record, acknowledge. Nothing else on the write path.

Every answer is a promise to Cybersource: 200 only once the notification is durably in the
event store (or provably already there); 503 while the database is away so it retries, and
while the payload-form check is saturated (``payload_forms.py``); 401 for a signature that
cannot be trusted; 422, with the body kept as a dead letter, for a signed body the ledger
cannot read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from service.cybersource.envelope import DeliveryHeaders, dead_letter_identifiers
from service.cybersource.webhook_signature import (
    SIGNATURE_HEADER,
    AdmittedSignature,
    SignatureRejected,
    SignedContent,
    WebhookVerifier,
)
from service.ingest.decryption import NotificationDecryption, Opened, VerifiedDelivery
from service.ingest.inbox_entries import SignedDelivery, unsigned_entry
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
from service.ingest.wait_deadlines import WaitDeadlines
from service.ingest.webhook_http import (
    EMPTY_BAD_REQUEST,
    Answer,
    BodyTooLarge,
    error_answer,
    json_answer,
    read_bounded_body,
    read_headers,
)
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
# The answers almost every delivery gets, encoded once.
_OUTCOME_ANSWERS = {outcome: json_answer({"status": outcome.value}) for outcome in InboxOutcome}
_PAYLOAD_FORMS_BUSY = json_answer(
    {
        "error": "payload_form_busy",
        "detail": "too many deliveries wait for their payload-form signature check; retry later",
    },
    503,
    {"Retry-After": str(PAYLOAD_FORMS_RETRY_SECONDS)},
)


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
        self._body_deadlines = WaitDeadlines(body_timeout_seconds)
        self._items_per_delivery_max = items_per_delivery_max
        self._clock = clock
        self._pinning_recommended = False
        # A flood of junk must not grow the inbox (or the logs) without bound.
        self._refusal_recording = TokenBucket(refusals_recorded_per_second)
        # prometheus_client's labels() takes a lock and builds a key on every call; the
        # children are few (outcomes, signed forms) and kept here instead.
        self._outcome_counters: dict[str, Counter] = {}
        self._form_counters: dict[SignedContent, Counter] = {}

    async def endpoint(self, request: Request) -> Response:
        """GET and HEAD (Cybersource's health check); POST when ``handle`` is not routed to."""
        if request.method in ("GET", "HEAD"):
            return JSONResponse({"status": "ok"})
        answer = await self.answer(request.scope, request.receive)
        return Response(answer.body, answer.status, headers=answer.header_map)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A POST, straight from the ASGI server, without Starlette's request and response."""
        answer = await self.answer(scope, receive)
        await answer.send_to(send)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        started = time.perf_counter()
        try:
            return await self._receive(scope, receive)
        except StoreUnavailable:
            self._metrics.store_unavailable.inc()
            raise
        except ClientDisconnect:
            # Nobody is left to answer; the sender retries what it did not see acknowledged.
            log.info("webhook.client_disconnected")
            return EMPTY_BAD_REQUEST
        finally:
            self._metrics.acknowledgement_seconds.observe(time.perf_counter() - started)

    async def _receive(self, scope: Scope, receive: Receive) -> Answer:
        now = self._clock()
        received_at = datetime.fromtimestamp(now, UTC)
        header_values = read_headers(scope["headers"])
        headers = DeliveryHeaders.from_mapping(header_values)
        kept = kept_headers(header_values)
        try:
            # The header alone can be refused before a byte of the body is read.
            admitted = self._verifier.admit(header_values.get(SIGNATURE_HEADER), int(now * 1000))
        except SignatureRejected as rejection:
            entry = unsigned_entry(received_at, headers, kept)
            return await self._refuse(entry, rejection.reason, rejection.detail)
        try:
            # A client trickling its body would otherwise hold a connection and its buffer.
            body = await self._body_deadlines.bound(
                read_bounded_body(header_values, receive, self._max_body_bytes)
            )
        except TimeoutError:
            await self._record_refusal(unsigned_entry(received_at, headers, kept), "body_timeout")
            return error_answer(
                408, "body_timeout", f"the body took over {self._body_timeout_seconds:g} s to send"
            )
        except BodyTooLarge:
            await self._record_refusal(unsigned_entry(received_at, headers, kept), "body_too_large")
            return error_answer(
                413, "body_too_large", f"the body exceeds {self._max_body_bytes} bytes"
            )
        try:
            delivery = await self._verify(admitted, body)
        except SignatureRejected as rejection:
            entry = unsigned_entry(received_at, headers, kept)
            return await self._refuse(entry, rejection.reason, rejection.detail)
        except PayloadFormsBusy:
            # Not judged, so not recorded: the sender retries, and a genuine delivery then
            # verifies once the flood that filled the queue has passed.
            self._metrics.payload_forms_busy.inc()
            return _PAYLOAD_FORMS_BUSY

        verified = delivery.verified
        self._count_form(verified.signed_content)
        self._recommend_pinning(verified.signed_content)
        signed_at = datetime.fromtimestamp(verified.timestamp_ms / 1000, UTC)
        signed = SignedDelivery(received_at, headers, kept, verified, body, signed_at)
        try:
            return await self._record(signed, delivery)
        except (StoreUnavailable, ClientDisconnect):
            raise
        except Exception as error:
            if is_unavailability(error):
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
            # A signed body must never be lost to a fault of ours: keep it for an operator.
            return await self._keep_unexpected_dead_letter(signed, error)

    async def _verify(self, admitted: AdmittedSignature, body: bytes) -> VerifiedDelivery:
        """Every signature check of a delivery whose header was admitted: the one place that
        decides whether its body is Cybersource's."""
        return await self._decryption.verify(
            self._verifier, admitted, body, self._payload_forms.content
        )

    async def _record(self, signed: SignedDelivery, delivery: VerifiedDelivery) -> Answer:
        verified = signed.verified
        opened = self._decryption.open(
            signed.body,
            verified.signed_content,
            signed.signed_at,
            payload_digest=verified.payload_digest,
            decrypted=delivery.decrypted,
        )
        self._count_decryption(opened)
        reading = (
            read_delivery(
                opened.content,
                signed.headers,
                opened.scope,
                items_per_delivery_max=self._items_per_delivery_max,
                signed_at=signed.signed_at,
                organizations=self._organizations_by_key.get(verified.key_id),
            )
            if isinstance(opened, Opened)
            else opened
        )
        match reading:
            case Contradiction():
                return await self._refuse(
                    signed.inbox_entry(with_body=False), "envelope_mismatch", reading.problem
                )
            case Unreadable() | Undecrypted() | ForeignOrganization():
                # Signed by Cybersource but unreadable: keep it whole (encrypted, as it came)
                # for an operator; the answer is the same whatever the reason.
                delivery_id = await self._store.record_inbox(
                    signed.inbox_entry(InboxOutcome.REJECTED, reading.reason)
                )
                self._count(DEAD_LETTER)
                log.warning(
                    "webhook.dead_letter", key_id=verified.key_id,
                    reason=reading.reason if isinstance(reading, Undecrypted) else reading.problem,
                    delivery_id=delivery_id, **dead_letter_identifiers(signed.body),
                )  # fmt: skip
                foreign = isinstance(reading, ForeignOrganization)
                return error_answer(
                    422, "foreign_organization" if foreign else "unusable_body", reading.problem
                )
            case Ignored():
                await self._store.record_inbox(
                    signed.inbox_entry(InboxOutcome.IGNORED, reading.reason)
                )
                self._count(InboxOutcome.IGNORED)
                log.info("webhook.ignored", event_type=reading.event_type)
                return _OUTCOME_ANSWERS[InboxOutcome.IGNORED]
        notification, new_events = reading.notification, reading.events
        results = await self._appender.append(new_events, signed.read_entry(notification))
        outcome = delivery_outcome(results)
        self._count(outcome)
        conflict = outcome is InboxOutcome.CONFLICT
        # DEBUG for the rest: one INFO line per delivery cost more CPU than the append's own
        # work; the deliveries metric counts them, and conflicts, dead letters and refusals
        # are still logged one by one. Its fields are built only when the line is written.
        if conflict or log.is_enabled_for(logging.DEBUG):
            fields = {
                "notification_id": notification.notification_id,
                "claimed_notification_id": notification.claimed_notification_id,
                "event_type": notification.event_type,
                "key_id": verified.key_id,
                "signed_content": verified.signed_content.value,
                "positions": [result.position for result in results],
                "retry_count": notification.retry_number,
            }
            if conflict:
                log.error("webhook.conflict", **fields)
            else:
                log.debug(f"webhook.{outcome.value}", **fields)
        return _OUTCOME_ANSWERS[outcome]

    async def _keep_unexpected_dead_letter(
        self, signed: SignedDelivery, error: Exception
    ) -> Answer:
        """Record the body with as little else as possible: the rest may be what failed."""
        key_id = signed.verified.key_id
        dead_letter = InboxEntry(
            received_at=signed.received_at,
            outcome=InboxOutcome.REJECTED,
            reason=f"unusable_body: unexpected {type(error).__name__}",
            key_id=key_id,
            signed_content=signed.verified.signed_content,
            body=signed.body,
            headers=signed.kept_headers,
            signed_at=signed.signed_at,
            organization_id=signed.headers.organization_id,
        )
        try:
            delivery_id = await self._store.record_inbox(dead_letter)
        except Exception as recording_error:
            log.error("webhook.unexpected_error", key_id=key_id, exc_info=error)
            # Not even the bare body could be stored: the sender must keep it and retry.
            raise StoreUnavailable("the dead letter could not be recorded") from recording_error
        log.error(
            "webhook.unexpected_dead_letter", key_id=key_id, delivery_id=delivery_id,
            exc_info=error, **dead_letter_identifiers(signed.body),
        )  # fmt: skip
        self._count(DEAD_LETTER)
        return error_answer(
            422, "unusable_body", "the body could not be read; it is kept for review"
        )

    async def _refuse(self, entry: InboxEntry, reason: str, detail: str) -> Answer:
        self._metrics.signature_failures.labels(reason).inc()
        await self._record_refusal(entry, reason)
        return error_answer(401, reason, detail)

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
        label = str(outcome)
        counter = self._outcome_counters.get(label)
        if counter is None:
            counter = self._outcome_counters[label] = self._metrics.deliveries.labels(label)
        counter.inc()

    def _count_form(self, form: SignedContent) -> None:
        counter = self._form_counters.get(form)
        if counter is None:
            counter = self._metrics.signed_content_matches.labels(form.value)
            self._form_counters[form] = counter
        counter.inc()
