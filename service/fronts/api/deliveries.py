"""/v1/deliveries: the delivery log, replays, corrections and resolutions.

Read tokens see every delivery's headers, outcome, reason and the facts it produced or
conflicts with; only operator tokens see raw bodies, replay deliveries, record corrections
and resolve waiting deliveries (403 ``insufficient_scope`` otherwise).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX
from service.fronts.api import parameters as p
from service.fronts.api.contract import ApiOperation, ApiRoute, PathParameter
from service.fronts.auth import ApiAuthorizer, Caller, Scope, require_every_merchant
from service.fronts.errors import ApiError, bad_parameter
from service.ingest.corrections import CorrectionRefused, DeliveryCorrections
from service.ingest.delivery_documents import (
    DeliveryDetail,
    DeliveryList,
    DeliveryResolution,
    ReplayAnswer,
    detail,
    replay_answer,
    resolved,
    summaries,
)
from service.ingest.operator_reasons import REASON_LENGTH_MAX
from service.ingest.replay import DeliveryReplayer, NotReplayable, UnknownDelivery
from service.ingest.resolutions import DeliveryResolver, ResolutionRefused
from service.read.cursors import (
    DELIVERY_ID_MAX,
    UnreadableCursor,
    decode_delivery_cursor,
    encode_delivery_cursor,
)
from service.store.delivery_log import (
    PAGE_SIZE_MAX,
    DeliveryFilters,
    SqlDeliveryLog,
)
from service.store.schema import InboxOutcome

REASON_EXAMPLE = '{"reason": "why"}'


class ReasonRequest(BaseModel):
    """An operator's action on a delivery, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=REASON_LENGTH_MAX)


class CorrectionRequest(ReasonRequest):
    pass


class ResolutionRequest(ReasonRequest):
    pass


class DeliveryListParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)

    outcome: InboxOutcome | None = None
    event_type: str | None = Field(None, alias="eventType", max_length=IDENTIFIER_LENGTH_MAX)
    organization_id: str | None = Field(
        None, alias="organizationId", max_length=IDENTIFIER_LENGTH_MAX
    )
    notification_id: str | None = Field(
        None, alias="notificationId", max_length=IDENTIFIER_LENGTH_MAX
    )
    # A prefix: "unusable_body" selects the dead letters, whatever the rule they broke.
    reason: str | None = Field(None, min_length=1, max_length=IDENTIFIER_LENGTH_MAX)
    # The queue: dead letters not replayed into facts and conflicts not corrected or resolved.
    waiting: bool = False
    invoice_number: str | None = Field(
        None, alias="invoiceNumber", min_length=1, max_length=IDENTIFIER_LENGTH_MAX
    )
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
    ApiOperation(
        path="/v1/deliveries/{deliveryId}/resolution", method="post",
        operation_id="resolveDelivery",
        summary="Record that a waiting dead letter or conflict needs nothing more",
        description="Operator scope; recorded with its reason, once, never edited or deleted. "
        "The delivery leaves the queue (waiting=true); no fact changes.",
        path_parameters=(DELIVERY_ID,), request_model=ResolutionRequest,
        response=DeliveryResolution, response_description="The recorded resolution",
        errors=(*OPERATOR_ERRORS, 413), tags=("deliveries",),
    ),
)  # fmt: skip


class DeliveryApi:
    def __init__(
        self,
        delivery_log: SqlDeliveryLog,
        replayer: DeliveryReplayer,
        corrections: DeliveryCorrections,
        resolver: DeliveryResolver,
        authorizer: ApiAuthorizer,
        *,
        items_per_delivery_max: int,
    ) -> None:
        self._log = delivery_log
        self._replayer = replayer
        self._corrections = corrections
        self._resolver = resolver
        self._authorizer = authorizer
        self._items_per_delivery_max = items_per_delivery_max

    def routes(self) -> list[ApiRoute]:
        endpoints = {
            "listDeliveries": self._endpoint(self.list, Scope.READ),
            "getDelivery": self._endpoint(self.show, Scope.READ),
            "replayDelivery": self._endpoint(self.replay, Scope.OPERATOR),
            "correctDelivery": self._endpoint(self.correct, Scope.OPERATOR),
            "resolveDelivery": self._endpoint(self.resolve, Scope.OPERATOR),
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
            # Deliveries and exports span merchants: not for a token limited to some.
            caller = require_every_merchant(self._authorizer.check(request, scope))
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
            except ResolutionRefused as refused:
                status = 400 if refused.code == "bad_reason" else 409
                raise ApiError(status, refused.code, refused.detail) from None
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
        try:
            before_id = decode_delivery_cursor(parameters.cursor) if parameters.cursor else None
        except UnreadableCursor:
            raise bad_parameter("cursor", "is not a cursor this API issued") from None
        filters = DeliveryFilters(
            outcome=parameters.outcome,
            event_type=parameters.event_type,
            organization_id=parameters.organization_id,
            notification_id=parameters.notification_id,
            received_from=parameters.received_from,
            received_to=parameters.received_to,
            reason_prefix=parameters.reason,
            waiting=parameters.waiting,
            invoice_number=parameters.invoice_number,
        )
        rows = await self._log.deliveries(filters, parameters.limit, before_id)
        next_cursor = None
        if len(rows) == parameters.limit:
            next_cursor = encode_delivery_cursor(rows[-1].delivery_id)
        return DeliveryList(
            items=await summaries(rows, self._log),
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
        correction = await p.json_body(request, CorrectionRequest, REASON_EXAMPLE)
        outcome = await self._corrections.correct(delivery_id, correction.reason, caller.name)
        return replay_answer(outcome)

    async def resolve(self, request: Request, caller: Caller) -> DeliveryResolution:
        delivery_id = _delivery_id(request)
        resolution = await p.json_body(request, ResolutionRequest, REASON_EXAMPLE)
        return resolved(await self._resolver.resolve(delivery_id, resolution.reason, caller.name))


def _delivery_id(request: Request) -> int:
    text = request.path_params["deliveryId"]
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        raise bad_parameter("deliveryId", "must be a delivery id, a positive integer")
    delivery_id = int(text)
    if not 0 < delivery_id <= DELIVERY_ID_MAX:
        raise bad_parameter("deliveryId", "must be a delivery id, a positive integer")
    return delivery_id
