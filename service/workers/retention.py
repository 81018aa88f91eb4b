"""The inbox retention policy the serving process applies on a schedule.

Refused deliveries are kept ``LEDGER_RETENTION_REFUSED_DAYS`` (default 30); accepted,
duplicate and ignored ones only when ``LEDGER_RETENTION_ACCEPTED_DAYS`` is set (default:
kept for ever). Dead letters, conflicts and events are never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.errors import StoreUnavailable
from service.store.retention import PrunableKind, PruneResult, prune

log = structlog.get_logger("service.retention")

# Replicas all run the policy; the first run waits a little so that a fleet restarting at
# once does not prune in step, and a serve that stops at once never prunes.
FIRST_RUN_DELAY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    periods: dict[PrunableKind, timedelta]

    @classmethod
    def from_days(cls, *, refused_days: int | None, accepted_days: int | None) -> RetentionPolicy:
        periods: dict[PrunableKind, timedelta] = {}
        if refused_days is not None:
            periods[PrunableKind.REFUSED] = timedelta(days=refused_days)
        if accepted_days is not None:
            for kind in (PrunableKind.ACCEPTED, PrunableKind.DUPLICATE, PrunableKind.IGNORED):
                periods[kind] = timedelta(days=accepted_days)
        return cls(periods)


async def apply_retention(
    engine: AsyncEngine, policy: RetentionPolicy, now: datetime
) -> list[PruneResult]:
    results = []
    for kind, period in policy.periods.items():
        result = await prune(engine, kind, now - period)
        results.append(result)
        if result.rows:
            log.info(
                "retention.pruned",
                kind=kind.value,
                rows=result.rows,
                older_than_days=period.days,
                complete=result.complete,
            )
    return results


async def run_retention(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    stop: asyncio.Event,
    interval_seconds: float,
    on_pruned: Callable[[PruneResult], None],
    first_run_delay_seconds: float = FIRST_RUN_DELAY_SECONDS,
) -> None:
    delay_seconds = first_run_delay_seconds
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_seconds)
        if stop.is_set():
            return
        delay_seconds = interval_seconds
        try:
            for result in await apply_retention(engine, policy, datetime.now(UTC)):
                on_pruned(result)
        except StoreUnavailable:
            log.warning("retention.store_unavailable")
        except Exception:
            # Retention is idempotent and runs again next interval; an unexpected error is
            # reported, not allowed to end the worker.
            log.exception("retention.failed")
