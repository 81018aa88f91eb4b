"""Conflicts: a notification id delivered again with other content, and its correction.

The ledger keeps the version it recorded first; the conflicting delivery is kept whole in the
inbox. ``versions`` puts the two side by side. If the second version is the right one, an
operator records it as a correction: a new event (``source=operator``, with a reason), never
an edit of the first. Recording the same correction again changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from service.domain.events import EventSource, NewEvent, RecordedEvent
from service.domain.payloads import CorrectionRecorded, NotificationReceived, decode, encode
from service.ingest.decryption import NotificationDecryption
from service.ingest.operator_reasons import BadReason, operator_reason
from service.ingest.replay import ReplayOutcome, UnknownDelivery, delivery_facts
from service.store.delivery_log import DeliveryRow, SqlDeliveryLog
from service.store.delivery_queue import CORRECTION_KEY_PREFIX
from service.store.events.base import AppendOutcome, EventStore
from service.store.schema import InboxOutcome, ReplayResult


class CorrectionRefused(Exception):
    """A correction that cannot be recorded; ``code`` is stable, the message says why."""

    def __init__(self, code: str, detail: str, positions: Sequence[int] = ()) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.positions = tuple(positions)


@dataclass(frozen=True, slots=True)
class ConflictingVersions:
    """One fact as recorded and as the conflicting delivery states it."""

    recorded: RecordedEvent
    delivered: NewEvent


def conflicting_versions(
    facts: Sequence[NewEvent], recorded: Sequence[RecordedEvent]
) -> list[ConflictingVersions]:
    """The delivery's facts whose key is recorded with other content, beside that record."""
    by_key = {event.idempotency_key: event for event in recorded}
    versions = []
    for fact in facts:
        first = by_key.get(fact.idempotency_key)
        if first is not None and (
            first.type != fact.type
            or first.stream_id != fact.stream_id
            or first.data != fact.data
            or (fact.time_is_content and first.occurred_at != fact.occurred_at)
        ):
            versions.append(ConflictingVersions(first, fact))
    return versions


class DeliveryCorrections:
    def __init__(
        self,
        delivery_log: SqlDeliveryLog,
        store: EventStore,
        *,
        items_per_delivery_max: int,
        decryption: NotificationDecryption | None = None,
        organizations_by_key: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._log = delivery_log
        # Read as a replay reads: a version is one the signing key's merchant may state today.
        self._organizations_by_key = organizations_by_key
        self._store = store
        self._items_per_delivery_max = items_per_delivery_max
        self._decryption = decryption

    def facts(self, delivery: DeliveryRow) -> list[NewEvent] | None:
        """The facts a kept delivery states (``delivery_facts``, decrypting as configured)."""
        return delivery_facts(
            delivery,
            items_per_delivery_max=self._items_per_delivery_max,
            decryption=self._decryption,
            organizations_by_key=self._organizations_by_key,
        )

    async def versions(self, delivery: DeliveryRow) -> list[ConflictingVersions]:
        """Both versions of each conflicting fact (the delivery must carry its body)."""
        facts = self.facts(delivery)
        if not facts:
            return []
        recorded = await self._log.events_keyed([fact.idempotency_key for fact in facts])
        return conflicting_versions(facts, recorded)

    async def correct(self, delivery_id: int, reason: str, recorded_by: str) -> ReplayOutcome:
        try:
            reason = operator_reason(reason, "a correction")
        except BadReason as refused:
            raise CorrectionRefused("bad_reason", str(refused)) from None
        delivery = await self._log.delivery(delivery_id, with_body=True)
        if delivery is None:
            raise UnknownDelivery(delivery_id)
        if delivery.outcome is not InboxOutcome.CONFLICT:
            raise CorrectionRefused(
                "not_a_conflict",
                f"the delivery's outcome is {delivery.outcome.value}: only a conflict's version"
                " is recorded as a correction",
            )
        versions = await self.versions(delivery)
        if not versions:
            raise CorrectionRefused(
                "no_conflict_left",
                "the delivery no longer reads as a different version of a recorded fact",
            )
        corrections = [
            _correction(version, delivery_id, reason, recorded_by, index, len(versions))
            for index, version in enumerate(versions)
        ]
        results = await self._store.append(corrections)
        positions = tuple(result.position for result in results)
        outcomes = {result.outcome for result in results}
        if AppendOutcome.CONFLICT in outcomes:
            raise CorrectionRefused(
                "already_corrected",
                "a correction of this delivery is already recorded (with another reason or by"
                " another operator): it stands, and a further correction is a new delivery's",
                positions,
            )
        result = (
            ReplayResult.APPENDED
            if AppendOutcome.APPENDED in outcomes
            else (ReplayResult.DUPLICATE)
        )
        return ReplayOutcome(delivery_id, result, reason, positions)


def _correction(
    version: ConflictingVersions,
    delivery_id: int,
    reason: str,
    recorded_by: str,
    index: int,
    count: int,
) -> NewEvent:
    delivered = decode_new(version.delivered)
    key = CORRECTION_KEY_PREFIX + str(delivery_id) + (f"#{index}" if count > 1 else "")
    payload = CorrectionRecorded(
        delivered.organization_id,
        delivered.invoice_number,
        delivered.stated,
        delivered.payment,
        delivered.notification,
        reason=reason,
        delivery_id=delivery_id,
        corrects_position=version.recorded.position,
        recorded_by=recorded_by,
    )
    return replace(
        version.delivered,
        source=EventSource.OPERATOR,
        idempotency_key=key,
        data=encode(payload),
        time_is_content=True,
    )


def decode_new(event: NewEvent) -> NotificationReceived:
    """The typed payload of a fact not yet recorded (a webhook's: a notification)."""
    recorded = RecordedEvent(
        position=0,
        stream_id=event.stream_id,
        version=0,
        type=event.type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at,
        recorded_at=event.occurred_at,
        source=event.source,
        idempotency_key=event.idempotency_key,
        data=event.data,
    )
    payload = decode(recorded)
    assert isinstance(payload, NotificationReceived), "a webhook's fact is a notification"
    return payload
