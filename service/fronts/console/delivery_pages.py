"""The console's delivery pages: the log and its queue of deliveries waiting for an operator,
a delivery's story, replays, corrections and resolutions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from service.fronts.auth import Caller
from service.fronts.console.csv_files import same_filters
from service.fronts.console.frame import (
    DELIVERIES_PAGE_SIZE,
    ConsoleFrame,
)
from service.fronts.console.inputs import (
    InvalidInput,
    instant_or_day,
    small_form,
    text_filter,
)
from service.fronts.console.views import (
    as_document,
    body_text,
)
from service.ingest.corrections import CorrectionRefused
from service.ingest.delivery_documents import compared_fields, detail, summaries
from service.ingest.replay import NotReplayable, UnknownDelivery
from service.ingest.resolutions import ResolutionRefused
from service.read.cursors import (
    DELIVERY_ID_MAX,
    UnreadableCursor,
    decode_delivery_cursor,
    encode_delivery_cursor,
)
from service.store.delivery_log import DeliveryFilters
from service.store.schema import InboxOutcome, ReplayResult

DELIVERY_FILTERS = (
    "outcome",
    "eventType",
    "organizationId",
    "notificationId",
    "receivedFrom",
    "receivedTo",
    "reason",
    "waiting",
    "invoiceNumber",
)


def delivery_filters(query: Mapping[str, str]) -> DeliveryFilters:
    outcome_text = query.get("outcome") or None
    if outcome_text is not None and outcome_text not in set(InboxOutcome):
        raise InvalidInput("outcome: must be one of " + ", ".join(InboxOutcome))
    return DeliveryFilters(
        outcome=InboxOutcome(outcome_text) if outcome_text else None,
        event_type=text_filter(query.get("eventType"), "eventType"),
        organization_id=text_filter(query.get("organizationId"), "organizationId"),
        notification_id=text_filter(query.get("notificationId"), "notificationId"),
        received_from=instant_or_day(query.get("receivedFrom"), "receivedFrom", end=False),
        received_to=instant_or_day(query.get("receivedTo"), "receivedTo", end=True),
        reason_prefix=text_filter(query.get("reason"), "reason"),
        waiting=query.get("waiting") == "true",
        invoice_number=text_filter(query.get("invoiceNumber"), "invoiceNumber"),
    )


def selected_deliveries(values: list[str | Any]) -> list[int]:
    """The delivery ids a bulk replay form ticked: each a positive integer, once, in order."""
    if not values:
        raise InvalidInput("deliveryId: tick at least one delivery to replay")
    if len(values) > DELIVERIES_PAGE_SIZE:
        raise InvalidInput(f"deliveryId: at most {DELIVERIES_PAGE_SIZE} at once")
    chosen: list[int] = []
    for value in values:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise InvalidInput("deliveryId: must be a delivery's number")
        delivery_id = int(value)
        if not 0 < delivery_id <= DELIVERY_ID_MAX:
            raise InvalidInput("deliveryId: must be a delivery's number")
        if delivery_id not in chosen:
            chosen.append(delivery_id)
    return chosen


def _replayed(
    delivery_id: int,
    result: str,
    reason: str | None,
    positions: tuple[int, ...] = (),
    *,
    failed: bool = True,
) -> dict[str, Any]:
    return {
        "deliveryId": delivery_id,
        "result": result,
        "reason": reason,
        "positions": list(positions),
        "failed": failed,
    }


class DeliveryPages(ConsoleFrame):
    """The delivery log's pages: the list, one delivery, replay and correction."""

    async def deliveries(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        filters = delivery_filters(query)
        cursor = text_filter(query.get("cursor"), "cursor")
        try:
            before = decode_delivery_cursor(cursor) if cursor else None
        except UnreadableCursor:
            raise InvalidInput("cursor: is not a link this console made") from None
        log = self._sources.delivery_log
        rows = await log.deliveries(filters, DELIVERIES_PAGE_SIZE, before)
        older = None
        if len(rows) == DELIVERIES_PAGE_SIZE:
            kept = {name: value for name, value in query.items() if name != "cursor" and value}
            older = "?" + urlencode(
                {**kept, "cursor": encode_delivery_cursor(rows[-1].delivery_id)}
            )
        return self._render(
            request,
            "deliveries.html",
            title="Deliveries waiting for an operator" if filters.waiting else "Deliveries",
            deliveries=[as_document(item) for item in await summaries(rows, log)],
            outcomes=list(InboxOutcome),
            filters={name: query.get(name, "") for name in DELIVERY_FILTERS},
            older=older,
            operator=caller.is_operator,
            csv_query=same_filters(query),
        )

    async def replay_selected(self, request: Request, caller: Caller) -> Response:
        """Replays the deliveries ticked on a page of the log, one by one with the function a
        single replay uses, and shows what happened to each."""
        form = await small_form(request)
        delivery_ids = selected_deliveries(form.getlist("deliveryId"))
        outcomes = []
        for delivery_id in delivery_ids:
            try:
                outcome = await self._sources.replayer.replay(delivery_id, caller.name)
            except UnknownDelivery:
                outcomes.append(_replayed(delivery_id, "unknown", "no delivery with this id"))
            except NotReplayable as refused:
                outcomes.append(_replayed(delivery_id, "not_replayable", refused.detail))
            else:
                outcomes.append(
                    _replayed(
                        delivery_id,
                        outcome.result.value,
                        outcome.reason,
                        outcome.positions,
                        failed=outcome.result in (ReplayResult.UNREADABLE, ReplayResult.CONFLICT),
                    )
                )
        return self._render(
            request, "replayed.html", title="Replayed deliveries", outcomes=outcomes
        )

    async def delivery(self, request: Request, caller: Caller) -> Response:
        delivery_id = request.path_params["deliveryId"]
        return await self._delivery_page(request, caller, delivery_id)

    async def _delivery_page(
        self,
        request: Request,
        caller: Caller,
        delivery_id: int,
        *,
        notice: str | None = None,
        notice_failed: bool = False,
        problem: str | None = None,
        status_code: int = 200,
    ) -> Response:
        sources = self._sources
        # Read with its body: the body names the facts it states (shown to operators only).
        row = await sources.delivery_log.delivery(delivery_id, with_body=True)
        if row is None:
            raise UnknownDelivery(delivery_id)
        document = await detail(
            row,
            sources.delivery_log,
            sources.corrections,
            items_per_delivery_max=sources.items_per_delivery_max,
            with_body=caller.is_operator,
        )
        shown = as_document(document)
        return self._render(
            request,
            "delivery.html",
            status_code,
            title=f"Delivery {delivery_id}",
            delivery=shown,
            # Each conflict's two versions field by field, the fields that differ marked.
            compared=[
                compared_fields(versions.recorded.data, versions.delivered.data)
                for versions in document.conflicts
            ],
            waiting=await sources.resolver.is_waiting(delivery_id),
            body=body_text(shown["body"]),
            operator=caller.is_operator,
            notice=notice,
            notice_failed=notice_failed,
            problem=problem,
        )

    async def replay(self, request: Request, caller: Caller) -> Response:
        """Replays with the same function as /v1, then shows the delivery and its result."""
        delivery_id = request.path_params["deliveryId"]
        try:
            outcome = await self._sources.replayer.replay(delivery_id, caller.name)
        except NotReplayable as refused:
            return await self._delivery_page(
                request, caller, delivery_id, problem=refused.detail, status_code=409
            )
        positions = ", ".join(str(position) for position in outcome.positions)
        notice = f"Replayed: {outcome.result.value}"
        if positions:
            notice += f" (positions {positions})"
        if outcome.reason:
            notice += f": {outcome.reason}"
        # A replay that still does not read, or conflicts, did not do what was asked.
        failed = outcome.result in (ReplayResult.UNREADABLE, ReplayResult.CONFLICT)
        return await self._delivery_page(
            request, caller, delivery_id, notice=notice, notice_failed=failed
        )

    async def correct(self, request: Request, caller: Caller) -> Response:
        delivery_id = request.path_params["deliveryId"]
        form = await small_form(request)
        reason = str(form.get("reason", ""))
        try:
            outcome = await self._sources.corrections.correct(delivery_id, reason, caller.name)
        except CorrectionRefused as refused:
            return await self._delivery_page(
                request, caller, delivery_id, problem=refused.detail, status_code=409
            )
        positions = ", ".join(str(position) for position in outcome.positions)
        return await self._delivery_page(
            request, caller, delivery_id, notice=f"Correction recorded at positions {positions}"
        )

    async def resolve(self, request: Request, caller: Caller) -> Response:
        delivery_id = request.path_params["deliveryId"]
        form = await small_form(request)
        reason = str(form.get("reason", ""))
        try:
            await self._sources.resolver.resolve(delivery_id, reason, caller.name)
        except ResolutionRefused as refused:
            return await self._delivery_page(
                request, caller, delivery_id, problem=refused.detail, status_code=409
            )
        return await self._delivery_page(request, caller, delivery_id, notice="Resolved")
