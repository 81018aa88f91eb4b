"""/v1/deliveries: the delivery log, replays and corrections.

Read tokens see every delivery's headers, outcome, reason and the facts it produced or
conflicts with; only operator tokens see raw bodies, replay deliveries and record
corrections (403 ``insufficient_scope`` otherwise).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api import parameters as p
from service.api.auth import ApiAuthorizer, Caller, Scope
from service.api.contract import ApiOperation, ApiRoute, PathParameter
from service.api.errors import ApiError, bad_parameter
from service.domain.events import NewEvent, RecordedEvent
from service.ingest.corrections import (
    REASON_LENGTH_MAX,
    ConflictingVersions,
    CorrectionRefused,
    DeliveryCorrections,
)
from service.ingest.replay import (
    DeliveryReplayer,
    NotReplayable,
    ReplayOutcome,
    UnknownDelivery,
    check_replayable,
    delivery_facts,
)
from service.store.delivery_log import (
    PAGE_SIZE_MAX,
    DeliveryFilters,
    DeliveryRow,
    ReplayRow,
    SqlDeliveryLog,
)
from service.store.schema import InboxOutcome, ReplayResult

REQUEST_BODY_BYTES_MAX = 4096
DELIVERY_ID_MAX = 2**63 - 1


class _Document(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class DeliveryReplay(_Document):
    replayed_at: datetime
    replayed_by: str
    result: ReplayResult
    reason: str | None
    positions: list[int]


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
    replayable: bool
    last_replay: DeliveryReplay | None


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


class CorrectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=REASON_LENGTH_MAX)


class DeliveryListParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)

    outcome: InboxOutcome | None = None
    event_type: str | None = Field(None, alias="eventType", max_length=p.IDENTIFIER_LENGTH_MAX)
    organization_id: str | None = Field(
        None, alias="organizationId", max_length=p.IDENTIFIER_LENGTH_MAX
    )
    notification_id: str | None = Field(
        None, alias="notificationId", max_length=p.IDENTIFIER_LENGTH_MAX
    )
    # A prefix: "unusable_body" selects the dead letters, whatever the rule they broke.
    reason: str | None = Field(None, min_length=1, max_length=p.IDENTIFIER_LENGTH_MAX)
    received_from: p.Instant | None = Field(None, alias="receivedFrom")
    received_to: p.Instant | None = Field(None, alias="receivedTo")
    limit: int = Field(100, ge=1, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(None, max_length=p.CURSOR_LENGTH_MAX)


class DeliveryParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Handler = Callable[[Request, Caller], Awaitable[BaseModel]]

DELIVERY_ID = PathParameter(
    "deliveryId", "The delivery's id in the log", {"type": "integer", "minimum": 1,
                                                   "maximum": DELIVERY_ID_MAX},
)  # fmt: skip
OPERATOR_ERRORS = (400, 401, 403, 404, 409, 503)
OPERATIONS = (
    ApiOperation(
        path="/v1/deliveries", method="get", operation_id="listDeliveries",
        summary="The delivery log: every webhook delivery with its outcome, newest first",
        parameters=DeliveryListParameters, response=DeliveryList,
        response_description="A page of deliveries", tags=("deliveries",),
    ),
    ApiOperation(
        path="/v1/deliveries/{deliveryId}", method="get", operation_id="getDelivery",
        summary="One delivery: headers, outcome, the facts it produced, replays, conflicts",
        description="The raw body only to operator tokens (null otherwise).",
        parameters=DeliveryParameters, path_parameters=(DELIVERY_ID,),
        response=DeliveryDetail, response_description="The delivery",
        errors=(400, 401, 404, 503), tags=("deliveries",),
    ),
    ApiOperation(
        path="/v1/deliveries/{deliveryId}/replay", method="post",
        operation_id="replayDelivery",
        summary="Re-read a kept delivery with today's code and append what it now states",
        description="Operator scope. Appended exactly as a fresh delivery would be: replaying "
        "twice, or something already recorded, changes nothing.",
        path_parameters=(DELIVERY_ID,), response=ReplayAnswer,
        response_description="What the replay did", errors=OPERATOR_ERRORS,
        tags=("deliveries",),
    ),
    ApiOperation(
        path="/v1/deliveries/{deliveryId}/corrections", method="post",
        operation_id="correctDelivery",
        summary="Record a conflicting delivery's version as a correction (source operator)",
        description="Operator scope; a new fact with its reason, never an edit.",
        path_parameters=(DELIVERY_ID,), request_model=CorrectionRequest,
        response=ReplayAnswer, response_description="What the correction recorded",
        errors=(*OPERATOR_ERRORS, 413), tags=("deliveries",),
    ),
)  # fmt: skip


class DeliveryApi:
    def __init__(
        self,
        delivery_log: SqlDeliveryLog,
        replayer: DeliveryReplayer,
        corrections: DeliveryCorrections,
        authorizer: ApiAuthorizer,
        *,
        items_per_delivery_max: int,
    ) -> None:
        self._log = delivery_log
        self._replayer = replayer
        self._corrections = corrections
        self._authorizer = authorizer
        self._items_per_delivery_max = items_per_delivery_max

    def routes(self) -> list[ApiRoute]:
        endpoints = {
            "listDeliveries": self._endpoint(self.list, Scope.READ),
            "getDelivery": self._endpoint(self.show, Scope.READ),
            "replayDelivery": self._endpoint(self.replay, Scope.OPERATOR),
            "correctDelivery": self._endpoint(self.correct, Scope.OPERATOR),
        }
        return [
            ApiRoute(
                operation.path,
                endpoints[operation.operation_id],
                methods=[operation.method.upper()],
                operations=[operation],
            )
            for operation in OPERATIONS
        ]

    def _endpoint(self, handler: Handler, scope: Scope) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            caller = self._authorizer.check(request, scope)
            try:
                document = await handler(request, caller)
            except UnknownDelivery:
                raise ApiError(404, "unknown_delivery", "no delivery with this id") from None
            except NotReplayable as refused:
                raise ApiError(409, refused.code, refused.detail) from None
            except CorrectionRefused as refused:
                status = 400 if refused.code == "bad_reason" else 409
                facts = {"positions": list(refused.positions)}
                raise ApiError(status, refused.code, refused.detail, facts=facts) from None
            return JSONResponse(document.model_dump(mode="json", by_alias=True))

        return endpoint

    async def list(self, request: Request, caller: Caller) -> DeliveryList:
        parameters = p.parse(
            DeliveryListParameters, p.query_dict(request.scope.get("query_string", b""))
        )
        if (
            parameters.received_from is not None
            and parameters.received_to is not None
            and parameters.received_to < parameters.received_from
        ):
            raise bad_parameter("receivedTo", "must not be before receivedFrom")
        before_id = decode_cursor(parameters.cursor) if parameters.cursor else None
        filters = DeliveryFilters(
            outcome=parameters.outcome,
            event_type=parameters.event_type,
            organization_id=parameters.organization_id,
            notification_id=parameters.notification_id,
            received_from=parameters.received_from,
            received_to=parameters.received_to,
            reason_prefix=parameters.reason,
        )
        rows = await self._log.deliveries(filters, parameters.limit, before_id)
        replays = await self._log.replays([row.delivery_id for row in rows])
        next_cursor = None
        if len(rows) == parameters.limit:
            next_cursor = encode_cursor(rows[-1].delivery_id)
        return DeliveryList(
            items=[summary(row, replays[row.delivery_id]) for row in rows],
            next_cursor=next_cursor,
        )

    async def show(self, request: Request, caller: Caller) -> DeliveryDetail:
        p.parse(DeliveryParameters, p.query_dict(request.scope.get("query_string", b"")))
        # The body is read to find the facts the delivery states, and shown to operators only.
        row = await self._log.delivery(_delivery_id(request), with_body=True)
        if row is None:
            raise UnknownDelivery
        return await detail(
            row,
            self._log,
            self._corrections,
            items_per_delivery_max=self._items_per_delivery_max,
            with_body=caller.is_operator,
        )

    async def replay(self, request: Request, caller: Caller) -> ReplayAnswer:
        outcome = await self._replayer.replay(_delivery_id(request), caller.name)
        return replay_answer(outcome)

    async def correct(self, request: Request, caller: Caller) -> ReplayAnswer:
        delivery_id = _delivery_id(request)
        correction = await _correction_request(request)
        outcome = await self._corrections.correct(delivery_id, correction.reason, caller.name)
        return replay_answer(outcome)


def replay_answer(outcome: ReplayOutcome) -> ReplayAnswer:
    return ReplayAnswer(
        delivery_id=outcome.delivery_id,
        result=outcome.result,
        reason=outcome.reason,
        positions=list(outcome.positions),
    )


def summary(row: DeliveryRow, replays: list[ReplayRow]) -> DeliverySummary:
    return DeliverySummary(**_summary_fields(row, replays))


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
    facts = delivery_facts(row, items_per_delivery_max=items_per_delivery_max) or []
    recorded = await delivery_log.events_keyed([fact.idempotency_key for fact in facts])
    conflicts = await corrections.versions(row) if row.outcome is InboxOutcome.CONFLICT else []
    body = None
    if with_body and row.body is not None:
        body = row.body.decode("utf-8", errors="replace")
    return DeliveryDetail(
        **_summary_fields(row, replays),
        headers=dict(row.headers or {}),
        positions=[event.position for event in recorded],
        replays=[_replay(replay) for replay in replays],
        conflicts=[_conflict(versions) for versions in conflicts],
        body=body,
    )


def _summary_fields(row: DeliveryRow, replays: list[ReplayRow]) -> dict[str, Any]:
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
        "replayable": replayable,
        "last_replay": _replay(replays[-1]) if replays else None,
    }


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
    return FactVersion(
        invoice_number=event.stream_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source.value,
        position=event.position,
        data=dict(event.data),
    )


def _delivered_version(event: NewEvent) -> FactVersion:
    return FactVersion(
        invoice_number=event.stream_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source.value,
        position=None,
        data=json.loads(json.dumps(event.data)),
    )


def encode_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["delivery", delivery_id]).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The delivery id a cursor names; anything but a cursor this API issued is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        match key:
            case ["delivery", int() as delivery_id] if 0 < delivery_id <= DELIVERY_ID_MAX:
                return delivery_id
        raise ValueError("not a delivery cursor")
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise bad_parameter("cursor", "is not a cursor this API issued") from None


def _delivery_id(request: Request) -> int:
    text = request.path_params["deliveryId"]
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        raise bad_parameter("deliveryId", "must be a delivery id, a positive integer")
    delivery_id = int(text)
    if not 0 < delivery_id <= DELIVERY_ID_MAX:
        raise bad_parameter("deliveryId", "must be a delivery id, a positive integer")
    return delivery_id


async def _correction_request(request: Request) -> CorrectionRequest:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > REQUEST_BODY_BYTES_MAX:
            too_large = f"the body exceeds {REQUEST_BODY_BYTES_MAX} bytes"
            raise ApiError(413, "body_too_large", too_large)
    try:
        document: Mapping[str, Any] = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(
            400, "bad_body", 'the body must be JSON: {"reason": "why this version is right"}'
        ) from None
    try:
        return CorrectionRequest.model_validate(document)
    except ValidationError as error:
        detail = error.errors()[0]
        name = ".".join(str(part) for part in detail["loc"]) or "body"
        raise ApiError(400, "bad_body", f"{name}: {detail['msg']}") from None
