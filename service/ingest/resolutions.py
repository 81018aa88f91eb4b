"""Resolving a delivery that waits for an operator: a recorded word, with a reason, that a dead
letter or a conflict needs nothing more (the first version stands, the payment was entered
by hand, …). It changes no fact and no inbox row; the delivery leaves the queue
(service/store/delivery_queue.py) and its resolution shows beside it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from service.ingest.operator_reasons import BadReason, operator_reason
from service.ingest.replay import UnknownDelivery
from service.store.delivery_log import SqlDeliveryLog
from service.store.delivery_queue import (
    AlreadyResolved,
    ResolutionRow,
    SqlDeliveryResolutions,
)


class ResolutionRefused(Exception):
    """A resolution that cannot be recorded; ``code`` is stable, the message says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class DeliveryResolver:
    def __init__(
        self,
        delivery_log: SqlDeliveryLog,
        resolutions: SqlDeliveryResolutions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._log = delivery_log
        self._resolutions = resolutions
        self._clock = clock

    async def is_waiting(self, delivery_id: int) -> bool:
        """Whether the delivery waits for an operator (and may be resolved)."""
        return await self._resolutions.is_waiting(delivery_id)

    async def resolve(self, delivery_id: int, reason: str, resolved_by: str) -> ResolutionRow:
        try:
            reason = operator_reason(reason, "a resolution")
        except BadReason as refused:
            raise ResolutionRefused("bad_reason", str(refused)) from None
        delivery = await self._log.delivery(delivery_id, with_body=False)
        if delivery is None:
            raise UnknownDelivery(delivery_id)
        if not await self._resolutions.is_waiting(delivery_id):
            if (await self._log.resolutions([delivery_id])).get(delivery_id):
                raise ResolutionRefused("already_resolved", "the delivery is resolved already")
            raise ResolutionRefused(
                "not_waiting",
                f"the delivery ({delivery.outcome.value}) does not wait for an operator: only"
                " dead letters not replayed into facts and conflicts not corrected do",
            )
        resolution = ResolutionRow(delivery_id, self._clock(), resolved_by, reason)
        try:
            await self._resolutions.record(resolution)
        except AlreadyResolved:
            raise ResolutionRefused(
                "already_resolved", "the delivery is resolved already"
            ) from None
        return resolution
