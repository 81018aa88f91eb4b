"""A delivery's inbox row as the receiver knows it at each step: before its signature
verified (the headers' word only) and after (the signature's key, form and time, and the body).

Each row is built once, with every field it needs: the receiver never copies one to change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.cybersource.envelope import DeliveryHeaders
from service.cybersource.webhook_signature import VerifiedSignature
from service.ingest.notification import Notification
from service.store.events.base import InboxEntry
from service.store.schema import InboxOutcome


@dataclass(frozen=True, slots=True)
class SignedDelivery:
    """A delivery whose signature verified: what its inbox row holds whatever its outcome."""

    received_at: datetime
    headers: DeliveryHeaders
    kept_headers: dict[str, str]
    verified: VerifiedSignature
    body: bytes
    signed_at: datetime

    def inbox_entry(
        self,
        outcome: InboxOutcome | None = None,
        reason: str | None = None,
        *,
        with_body: bool = True,
    ) -> InboxEntry:
        """Its row with what the headers say (a delivery the ledger did not read)."""
        return InboxEntry(
            received_at=self.received_at,
            outcome=outcome,
            reason=reason,
            event_type=self.headers.event_type,
            webhook_id=self.headers.webhook_id,
            key_id=self.verified.key_id,
            signed_content=self.verified.signed_content,
            retry_count=self.headers.retry_count,
            trace_id=self.headers.trace_id,
            body=self.body if with_body else None,
            headers=self.kept_headers,
            signed_at=self.signed_at,
            organization_id=self.headers.organization_id,
        )

    def read_entry(self, notification: Notification) -> InboxEntry:
        """Its row once read: the identifiers are the notification's (signed where it says)."""
        return InboxEntry(
            received_at=self.received_at,
            notification_id=notification.notification_id,
            event_type=notification.event_type,
            webhook_id=notification.webhook_id,
            key_id=self.verified.key_id,
            signed_content=self.verified.signed_content,
            retry_count=notification.retry_number,
            trace_id=self.headers.trace_id,
            body=self.body,
            headers=self.kept_headers,
            signed_at=self.signed_at,
            organization_id=notification.organization_id,
        )


def unsigned_entry(
    received_at: datetime, headers: DeliveryHeaders, kept: dict[str, str]
) -> InboxEntry:
    """The row of a delivery refused before its signature verified: the headers' word only."""
    return InboxEntry(
        received_at=received_at,
        event_type=headers.event_type,
        webhook_id=headers.webhook_id,
        retry_count=headers.retry_count,
        trace_id=headers.trace_id,
        headers=kept,
        organization_id=headers.organization_id,
    )
