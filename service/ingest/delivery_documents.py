"""The delivery log as the fronts show it: a delivery's summary and detail, the facts it
produced or conflicts with, and what a replay or a correction did."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from service.domain.events import NewEvent, RecordedEvent
from service.ingest.corrections import ConflictingVersions, DeliveryCorrections
from service.ingest.replay import NotReplayable, ReplayOutcome, check_replayable
from service.store.delivery_log import DeliveryRow, ReplayRow, SqlDeliveryLog
from service.store.delivery_queue import ResolutionRow
from service.store.schema import InboxOutcome, ReplayResult


class _Document(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class DeliveryReplay(_Document):
    replayed_at: datetime
    replayed_by: str
    result: ReplayResult
    reason: str | None
    positions: list[int]


class DeliveryResolution(_Document):
    resolved_at: datetime
    resolved_by: str
    reason: str


class DeliverySummary(_Document):
    delivery_id: int
    received_at: datetime
    outcome: InboxOutcome
    reason: str | None
    notification_id: str | None
    event_type: str | None
    organization_id: str | None
    webhook_id: str | None
    key_id: str | None = Field(description="the verified signature's key; null if unverified")
    signed_content: str | None
    signed_at: datetime | None = Field(
        description="the verified signature's time; null for deliveries kept before it was"
    )
    retry_count: int | None
    trace_id: str | None
    event_position: int | None
    body_bytes: int | None = Field(description="the kept body's size; null if none was kept")
    body_redacted_at: datetime | None = Field(
        None,
        description="when the body was redacted because a payer it named was erased (it can"
        " no longer be replayed); null if it was not",
    )
    replayable: bool
    last_replay: DeliveryReplay | None
    resolution: DeliveryResolution | None = Field(
        None,
        description="an operator's word that this dead letter or conflict needs nothing more;"
        " null if none was recorded",
    )


class DeliveryList(_Document):
    items: list[DeliverySummary]
    next_cursor: str | None


class FactVersion(_Document):
    invoice_number: str
    type: str
    occurred_at: datetime
    source: str
    position: int | None = Field(description="the recorded event's position; null if unrecorded")
    data: dict[str, Any]


class ConflictVersions(_Document):
    recorded: FactVersion
    delivered: FactVersion


class DeliveryDetail(DeliverySummary):
    headers: dict[str, str]
    positions: list[int] = Field(description="the recorded events with this delivery's keys")
    replays: list[DeliveryReplay]
    conflicts: list[ConflictVersions]
    body: str | None = Field(description="the raw body as text; operator tokens only")


class ReplayAnswer(_Document):
    delivery_id: int
    result: ReplayResult
    reason: str | None
    positions: list[int]


def replay_answer(outcome: ReplayOutcome) -> ReplayAnswer:
    return ReplayAnswer(
        delivery_id=outcome.delivery_id,
        result=outcome.result,
        reason=outcome.reason,
        positions=list(outcome.positions),
    )


async def summaries(
    rows: Sequence[DeliveryRow], delivery_log: SqlDeliveryLog
) -> list[DeliverySummary]:
    """Each delivery beside its last replay and its resolution (two queries for the page)."""
    delivery_ids = [row.delivery_id for row in rows]
    replays = await delivery_log.replays(delivery_ids)
    resolutions = await delivery_log.resolutions(delivery_ids)
    return [
        DeliverySummary(
            **_summary_fields(row, replays[row.delivery_id], resolutions.get(row.delivery_id))
        )
        for row in rows
    ]


async def detail(
    row: DeliveryRow,
    delivery_log: SqlDeliveryLog,
    corrections: DeliveryCorrections,
    *,
    items_per_delivery_max: int,
    with_body: bool,
) -> DeliveryDetail:
    """The whole story of one delivery (``row`` read with its body)."""
    replays = (await delivery_log.replays([row.delivery_id]))[row.delivery_id]
    resolution = (await delivery_log.resolutions([row.delivery_id])).get(row.delivery_id)
    facts = corrections.facts(row) or []
    recorded = await delivery_log.events_keyed([fact.idempotency_key for fact in facts])
    conflicts = await corrections.versions(row) if row.outcome is InboxOutcome.CONFLICT else []
    body = None
    if with_body and row.body is not None:
        body = row.body.decode("utf-8", errors="replace")
    return DeliveryDetail(
        **_summary_fields(row, replays, resolution),
        headers=dict(row.headers or {}),
        positions=[event.position for event in recorded],
        replays=[_replay(replay) for replay in replays],
        conflicts=[_conflict(versions) for versions in conflicts],
        body=body,
    )


def _summary_fields(
    row: DeliveryRow, replays: list[ReplayRow], resolution: ResolutionRow | None
) -> dict[str, Any]:
    try:
        check_replayable(row)
        replayable = True
    except NotReplayable:
        replayable = False
    return {
        "delivery_id": row.delivery_id,
        "received_at": row.received_at,
        "outcome": row.outcome,
        "reason": row.reason,
        "notification_id": row.notification_id,
        "event_type": row.event_type,
        "organization_id": row.organization_id,
        "webhook_id": row.webhook_id,
        "key_id": row.key_id,
        "signed_content": row.signed_content,
        "signed_at": row.signed_at,
        "retry_count": row.retry_count,
        "trace_id": row.trace_id,
        "event_position": row.event_position,
        "body_bytes": row.body_bytes,
        "body_redacted_at": row.body_redacted_at,
        "replayable": replayable,
        "last_replay": _replay(replays[-1]) if replays else None,
        "resolution": None if resolution is None else resolved(resolution),
    }


def resolved(resolution: ResolutionRow) -> DeliveryResolution:
    return DeliveryResolution(
        resolved_at=resolution.resolved_at,
        resolved_by=resolution.resolved_by,
        reason=resolution.reason,
    )


def _replay(replay: ReplayRow) -> DeliveryReplay:
    return DeliveryReplay(
        replayed_at=replay.replayed_at,
        replayed_by=replay.replayed_by,
        result=replay.result,
        reason=replay.reason,
        positions=list(replay.positions),
    )


def _conflict(versions: ConflictingVersions) -> ConflictVersions:
    return ConflictVersions(
        recorded=_recorded_version(versions.recorded),
        delivered=_delivered_version(versions.delivered),
    )


def _recorded_version(event: RecordedEvent) -> FactVersion:
    return _version(event, event.position, dict(event.data))


def _delivered_version(event: NewEvent) -> FactVersion:
    # Through JSON, as it would be stored: the same values the recorded version shows.
    return _version(event, None, json.loads(json.dumps(event.data)))


def _version(
    event: NewEvent | RecordedEvent, position: int | None, data: dict[str, Any]
) -> FactVersion:
    return FactVersion(
        invoice_number=event.stream_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source.value,
        position=position,
        data=data,
    )


@dataclass(frozen=True, slots=True)
class ComparedField:
    """One field of a conflict's two versions, side by side (dotted name, text of each)."""

    name: str
    recorded: str
    delivered: str

    @property
    def differs(self) -> bool:
        return self.recorded != self.delivered


def compared_fields(
    recorded: Mapping[str, Any], delivered: Mapping[str, Any]
) -> list[ComparedField]:
    """Every field either version holds, by name; a field one lacks is empty there."""
    left, right = _flat(recorded), _flat(delivered)
    return [
        ComparedField(name, left.get(name, ""), right.get(name, ""))
        for name in sorted(set(left) | set(right))
    ]


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    cells: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            cells.update(_flat(value, f"{prefix}{name}."))
        else:
            cells[prefix + name] = "null" if value is None else str(value)
    return cells
