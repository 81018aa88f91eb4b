"""The sandbox's webhook deliveries: signed as Cybersource signs them, encrypted for the
organizations and event types that registered a certificate, retried by its retry
policy (time compressible), with optional faults: a share of notifications dropped,
duplicated or delayed (so they arrive out of order). Each notification names the organization
whose invoice changed, and its ``eventDate`` is drawn around the history entry's date."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import structlog

from service.cybersource.webhook_signature import SignedContent, payload_content, sign
from service.sandbox.event_dates import EventDates, EventTiming
from service.sandbox.invoices import HistoryEntry, SandboxInvoice
from service.sandbox.notification_encryption import NotificationEncryption, SignatureCovers

log = structlog.get_logger("service.sandbox")


@dataclass(frozen=True)
class RetryPolicy:
    """Cybersource's defaults: first retry a minute after a failure, then every minute, three
    times. ``seconds_per_minute`` compresses time for tests and demos."""

    first_retry_minutes: float = 1
    interval_minutes: float = 1
    retries: int = 3
    seconds_per_minute: float = 60.0


@dataclass(frozen=True)
class DeliveryFaults:
    drop_share: float = 0.0
    duplicate_share: float = 0.0
    delay_share: float = 0.0
    delay_seconds_max: float = 0.0
    seed: int | None = None


@dataclass
class WebhookTarget:
    url: str
    key_id: str
    key: bytes
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    signed_content: SignedContent = SignedContent.PAYLOAD


# How many notifications the log lists (the newest); the counts cover every one.
LOGGED_NOTIFICATIONS_MAX = 500


@dataclass
class LoggedNotification:
    notification_id: str
    event_type: str
    organization_id: str
    invoice_number: str
    event_date: str
    outcome: str = "pending"  # pending, acknowledged, failed (retries exhausted), dropped
    attempts: int = 0
    last_status: int | None = None  # the ledger's last HTTP status; None: no answer

    def document(self) -> dict[str, Any]:
        return {
            "notificationId": self.notification_id,
            "eventType": self.event_type,
            "organizationId": self.organization_id,
            "invoiceNumber": self.invoice_number,
            "eventDate": self.event_date,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "lastStatus": self.last_status,
        }


@dataclass
class DeliveryLog:
    sent: int = 0
    acknowledged: int = 0
    dropped: int = 0
    failed: int = 0  # retries exhausted
    pending: int = 0
    notifications: deque[LoggedNotification] = field(
        default_factory=lambda: deque(maxlen=LOGGED_NOTIFICATIONS_MAX)
    )

    def document(self) -> dict[str, Any]:
        """The counts, and the newest notifications first with what became of each."""
        return {
            "sent": self.sent, "acknowledged": self.acknowledged, "dropped": self.dropped,
            "failed": self.failed, "pending": self.pending,
            "notifications": [entry.document() for entry in reversed(self.notifications)],
        }  # fmt: skip


class WebhookDeliveries:
    def __init__(
        self,
        target: WebhookTarget,
        retry_policy: RetryPolicy = RetryPolicy(),
        faults: DeliveryFaults = DeliveryFaults(),
        timeout_seconds: float = 10.0,
        timing: EventTiming | None = None,
        *,
        include_payment_amount: bool = False,
        encryption: NotificationEncryption | None = None,
        targets_by_organization: Mapping[str, WebhookTarget] | None = None,
    ) -> None:
        """``include_payment_amount``: add ``paymentAmount`` to paid and partial-payment data.
        Off by default: what those payloads carry is undocumented, so consumers must not need
        more than the send example shows.

        ``targets_by_organization``: several merchants, each with its own subscription and
        webhook key; an organization not named there is delivered to ``target``."""
        self._target = target
        self._targets = dict(targets_by_organization or {})
        self._retry = retry_policy
        self._faults = faults
        self._event_dates = EventDates(timing or EventTiming())
        self._include_payment_amount = include_payment_amount
        # Which notifications go encrypted (the sandbox's register_notification_certificate).
        self.encryption = encryption or NotificationEncryption()
        self._random = random.Random(faults.seed)
        self._http = httpx.AsyncClient(timeout=timeout_seconds)
        self._tasks: set[asyncio.Task[None]] = set()
        self.log = DeliveryLog()

    def notify(
        self,
        event_type: str,
        organization_id: str,
        invoice: SandboxInvoice,
        history_entry: HistoryEntry,
    ) -> None:
        """Queue a notification about this invoice's current state, after ``history_entry``."""
        notification = self._notification(event_type, organization_id, invoice, history_entry)
        logged = LoggedNotification(
            notification["notificationId"], event_type, organization_id,
            invoice.invoice_number, notification["eventDate"],
        )  # fmt: skip
        self.log.notifications.append(logged)
        if self._random.random() < self._faults.drop_share:
            self.log.dropped += 1
            logged.outcome = "dropped"
            return
        copies = 2 if self._random.random() < self._faults.duplicate_share else 1
        for _ in range(copies):
            delay = 0.0
            if self._random.random() < self._faults.delay_share:
                delay = self._random.uniform(0, self._faults.delay_seconds_max)
            task = asyncio.get_running_loop().create_task(
                self._deliver(notification, delay, logged)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settle(self, timeout_seconds: float) -> None:
        """Wait until every queued delivery has been acknowledged or given up."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_seconds)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()

    def _notification(
        self,
        event_type: str,
        organization_id: str,
        invoice: SandboxInvoice,
        history_entry: HistoryEntry,
    ) -> dict[str, Any]:
        content = invoice.content
        data: dict[str, Any] = {
            "invoiceNumber": invoice.invoice_number,
            "invoiceBalance": _amount(invoice.balance_amount),
            "balanceAmount": _amount(invoice.balance_amount),
            "currency": content.currency,
            "dueDate": content.due_date.isoformat(),
            "payerName": content.customer_name or "",
            "emailTo": content.customer_email or "",
            "invoiceUrl": invoice.payment_link,
            "eventType": event_type,
            "organizationID": organization_id,
        }
        if self._include_payment_amount and history_entry.payment is not None:
            data["paymentAmount"] = _amount(history_entry.payment.amount)
        event_date = self._event_dates.event_date(history_entry.date)
        return {
            "notificationId": str(uuid.uuid4()),
            "retryNumber": 0,
            "eventType": event_type,
            "eventDate": event_date.isoformat(timespec="milliseconds"),
            "webhookId": self._target_of(organization_id).webhook_id,
            "payloads": [{"data": data}],
        }

    async def _deliver(
        self, notification: dict[str, Any], delay_seconds: float, logged: LoggedNotification
    ) -> None:
        self.log.pending += 1
        try:
            await asyncio.sleep(delay_seconds)
            waits = [self._retry.first_retry_minutes] + [self._retry.interval_minutes] * (
                self._retry.retries - 1
            )
            for attempt in range(self._retry.retries + 1):
                logged.attempts += 1
                status = await self._attempt({**notification, "retryNumber": attempt}, attempt)
                logged.last_status = status
                if status is not None and 200 <= status < 300:
                    self.log.acknowledged += 1
                    logged.outcome = "acknowledged"
                    return
                if attempt < self._retry.retries:
                    await asyncio.sleep(waits[attempt] * self._retry.seconds_per_minute)
            self.log.failed += 1
            logged.outcome = "failed"
        finally:
            self.log.pending -= 1

    def _target_of(self, organization_id: str) -> WebhookTarget:
        return self._targets.get(organization_id, self._target)

    async def _attempt(self, notification: dict[str, Any], attempt: int) -> int | None:
        """The ledger's HTTP status, or None when it did not answer."""
        target = self._target_of(notification["payloads"][0]["data"]["organizationID"])
        body, signed, form = self._body(notification, target)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Vert.x-WebClient/3.9.8",
            "v-c-signature": sign(target.key_id, target.key, signed, int(time.time() * 1000), form),
            "V-C-Event-Type": notification["eventType"],
            "V-C-Organization-Id": notification["payloads"][0]["data"]["organizationID"],
            "V-C-Product-Name": "customerInvoicing",
            "V-C-Request-Type": "NEW" if attempt == 0 else "RETRY",
            "V-C-Retry-Count": str(attempt),
            "V-C-Transaction-Trace-Id": f"{uuid.uuid4()}-{attempt}",
            "V-C-Webhook-Id": target.webhook_id,
        }
        self.log.sent += 1
        try:
            response = await self._http.post(target.url, content=body, headers=headers)
        except httpx.TransportError as error:
            log.info("sandbox.delivery_failed", error=type(error).__name__, attempt=attempt)
            return None
        return response.status_code

    def _body(
        self, notification: dict[str, Any], target: WebhookTarget
    ) -> tuple[bytes, bytes, SignedContent]:
        """What is sent, what is signed, and in which form."""
        clear = json.dumps(notification).encode()
        organization = notification["payloads"][0]["data"]["organizationID"]
        encryption = self.encryption.for_notification(organization, notification["eventType"])
        if encryption is None:
            return clear, clear, target.signed_content
        body = encryption.encrypt(clear)
        signed = clear if encryption.signature_covers is SignatureCovers.DECRYPTED else body
        form = target.signed_content
        if form is SignedContent.PAYLOAD and payload_content(signed) is None:
            form = SignedContent.RAW  # a body that is only the JWE has no payload to sign
        return body, signed, form


def _amount(amount: Decimal) -> str:
    """Webhook amounts are strings, as in the documented example (``"102.00"``)."""
    return format(amount, "f")
