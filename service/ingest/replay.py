"""Replaying a kept delivery: its stored body read again with today's code.

A dead letter (signed, unreadable when it arrived, or encrypted for a key configured since)
or an ignored delivery that now reads is
appended exactly as a fresh delivery would be: the same reader (``reading.read_delivery``),
the headers and signature time it arrived with, so the same facts and idempotency keys.
Replaying twice, or replaying what is already recorded, changes nothing (``duplicate``).

The signature is never verified again with today's keys: it was verified on receipt, and
only deliveries that passed (a key id is recorded) kept their body. Every replay is recorded
beside the delivery, whose own row is never changed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from service.cybersource.envelope import DeliveryHeaders
from service.domain.events import NewEvent
from service.ingest.decryption import NotificationDecryption, Opened
from service.ingest.reading import ReadDelivery, Reading, read_delivery
from service.store.delivery_log import DeliveryFilters, DeliveryRow, ReplayRow, SqlDeliveryLog
from service.store.errors import StoreUnavailable, is_unavailability
from service.store.events.base import AppendOutcome, EventStore
from service.store.schema import InboxOutcome, ReplayResult

log = structlog.get_logger("service.ingest.replay")

REPLAY_BATCH_SIZE = 100
REPLAYS_PER_RUN_MAX_DEFAULT = 10_000


class UnknownDelivery(LookupError):
    pass


class NotReplayable(Exception):
    """A delivery that cannot be replayed; ``code`` is stable, the message says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    delivery_id: int
    result: ReplayResult
    reason: str | None
    positions: tuple[int, ...]

    @property
    def reads(self) -> bool:
        """Whether the delivery now reads (its facts are recorded, new or not)."""
        return self.result in (ReplayResult.APPENDED, ReplayResult.DUPLICATE)


def check_replayable(delivery: DeliveryRow) -> None:
    if delivery.outcome is InboxOutcome.CONFLICT:
        raise NotReplayable(
            "conflict",
            "a conflicting delivery would conflict again: record its version as a correction",
        )
    if delivery.key_id is None:
        raise NotReplayable(
            "unsigned",
            f"refused before its signature was verified ({delivery.reason}); its body was not"
            " kept, and an unverified body is never recorded",
        )
    if delivery.body_redacted_at is not None:
        raise NotReplayable(
            "redacted",
            f"its body was redacted on {delivery.body_redacted_at.isoformat()} when a payer it"
            " named was erased: the personal data it held is gone, so it can never be read again",
        )
    if delivery.body_bytes is None:
        raise NotReplayable(
            "no_body", f"its body was not kept ({delivery.reason}): there is nothing to read"
        )


def reread(
    delivery: DeliveryRow,
    body: bytes,
    *,
    items_per_delivery_max: int,
    decryption: NotificationDecryption | None = None,
    organizations_by_key: Mapping[str, frozenset[str]] | None = None,
) -> Reading:
    """Read a kept delivery as on receipt: the headers and signature time it came with, and
    an encrypted body decrypted with today's keys.

    Deliveries kept before their headers were (migration 0006) read with the headers the
    inbox had columns for, and their time of receipt stands for the signature's time.
    """
    if delivery.headers is not None:
        headers = DeliveryHeaders.from_mapping(delivery.headers)
    else:
        headers = DeliveryHeaders(
            event_type=delivery.event_type,
            webhook_id=delivery.webhook_id,
            retry_count=delivery.retry_count,
            trace_id=delivery.trace_id,
        )
    signed_at = delivery.signed_at or delivery.received_at
    opened = (decryption or NotificationDecryption()).open(body, delivery.signed_content, signed_at)
    if not isinstance(opened, Opened):
        return opened
    return read_delivery(
        opened.content,
        headers,
        opened.scope,
        items_per_delivery_max=items_per_delivery_max,
        signed_at=signed_at,
        # Today's merchants, as today's keys decrypt: a replay reads what they now allow.
        organizations=key_organizations(organizations_by_key, delivery.key_id),
    )


def key_organizations(
    organizations_by_key: Mapping[str, frozenset[str]] | None, key_id: str | None
) -> frozenset[str] | None:
    """The organizations ``key_id`` signs for today. With merchants' keys, a key no merchant
    holds any more (rotated out, or taken out once it leaked) signs for none; with keys of no
    merchant (LEDGER_WEBHOOK_KEYS), every key signs for any, as it always did."""
    if not organizations_by_key:
        return None
    return organizations_by_key.get(key_id or "", frozenset())


def delivery_facts(
    delivery: DeliveryRow,
    *,
    items_per_delivery_max: int,
    decryption: NotificationDecryption | None = None,
    organizations_by_key: Mapping[str, frozenset[str]] | None = None,
) -> list[NewEvent] | None:
    """The facts a kept delivery states, read as on receipt; None if it does not read."""
    if delivery.body is None or delivery.key_id is None:
        return None
    try:
        reading = reread(
            delivery,
            delivery.body,
            items_per_delivery_max=items_per_delivery_max,
            decryption=decryption,
            organizations_by_key=organizations_by_key,
        )
    except Exception:  # a body that broke the reader on receipt may break it again
        return None
    return reading.events if isinstance(reading, ReadDelivery) else None


class DeliveryReplayer:
    def __init__(
        self,
        delivery_log: SqlDeliveryLog,
        store: EventStore,
        *,
        items_per_delivery_max: int,
        clock: Callable[[], float] = time.time,
        decryption: NotificationDecryption | None = None,
        organizations_by_key: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._log = delivery_log
        self._organizations_by_key = organizations_by_key
        self._store = store
        self._items_per_delivery_max = items_per_delivery_max
        self._clock = clock
        self._decryption = decryption

    async def replay(self, delivery_id: int, replayed_by: str) -> ReplayOutcome:
        delivery = await self._log.delivery(delivery_id, with_body=True)
        if delivery is None:
            raise UnknownDelivery(delivery_id)
        check_replayable(delivery)
        assert delivery.body is not None
        outcome = await self._replayed(delivery, delivery.body)
        await self._log.record_replay(
            ReplayRow(
                delivery_id=delivery_id,
                replayed_at=datetime.fromtimestamp(self._clock(), UTC),
                replayed_by=replayed_by,
                result=outcome.result,
                reason=outcome.reason,
                positions=outcome.positions,
            )
        )
        log.info(
            "delivery.replayed",
            delivery_id=delivery_id,
            result=outcome.result.value,
            reason=outcome.reason,
            positions=list(outcome.positions),
            replayed_by=replayed_by,
        )
        return outcome

    async def replay_all(
        self,
        filters: DeliveryFilters,
        replayed_by: str,
        *,
        replays_max: int = REPLAYS_PER_RUN_MAX_DEFAULT,
    ) -> AsyncIterator[ReplayOutcome]:
        """Replay every replayable delivery the filters select, newest first, in batches.

        A delivery that already read on an earlier replay is passed over: its facts are
        recorded. At most ``replays_max`` replays per run; run again for more.
        """
        before_id: int | None = None
        replayed = 0
        while replayed < replays_max:
            batch = await self._log.deliveries(filters, REPLAY_BATCH_SIZE, before_id)
            if not batch:
                return
            before_id = batch[-1].delivery_id
            history = await self._log.replays([d.delivery_id for d in batch])
            for delivery in batch:
                if replayed >= replays_max:
                    return
                if _already_reads(history[delivery.delivery_id]):
                    continue
                try:
                    check_replayable(delivery)
                except NotReplayable:
                    continue
                yield await self.replay(delivery.delivery_id, replayed_by)
                replayed += 1

    async def _replayed(self, delivery: DeliveryRow, body: bytes) -> ReplayOutcome:
        delivery_id = delivery.delivery_id
        try:
            reading = reread(
                delivery,
                body,
                items_per_delivery_max=self._items_per_delivery_max,
                decryption=self._decryption,
                organizations_by_key=self._organizations_by_key,
            )
        except Exception as error:
            # The receiver keeps such a body as a dead letter; a replay says it still fails.
            log.error("delivery.replay_failed", delivery_id=delivery_id, exc_info=error)
            reason = f"unusable_body: unexpected {type(error).__name__}"
            return ReplayOutcome(delivery_id, ReplayResult.UNREADABLE, reason, ())
        if not isinstance(reading, ReadDelivery):
            return ReplayOutcome(delivery_id, ReplayResult.UNREADABLE, reading.reason, ())
        try:
            results = await self._store.append(reading.events)
        except StoreUnavailable:
            raise
        except Exception as error:
            if is_unavailability(error):
                raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
            # As on receipt: facts the store refuses are a body the ledger cannot record.
            log.error("delivery.replay_failed", delivery_id=delivery_id, exc_info=error)
            reason = f"unusable_body: unexpected {type(error).__name__}"
            return ReplayOutcome(delivery_id, ReplayResult.UNREADABLE, reason, ())
        outcomes = {result.outcome for result in results}
        positions = tuple(result.position for result in results)
        if AppendOutcome.CONFLICT in outcomes:
            reason = "a fact of the same key is recorded with other content"
            return ReplayOutcome(delivery_id, ReplayResult.CONFLICT, reason, positions)
        if AppendOutcome.APPENDED in outcomes:
            return ReplayOutcome(delivery_id, ReplayResult.APPENDED, None, positions)
        return ReplayOutcome(delivery_id, ReplayResult.DUPLICATE, None, positions)


def _already_reads(replays: list[ReplayRow]) -> bool:
    return any(r.result in (ReplayResult.APPENDED, ReplayResult.DUPLICATE) for r in replays)
