"""Sealing the facts recorded in clear (before a master key was set, or by a process that had
none): in bounded batches, in position order, each batch in its own transaction, so that a
run on millions of events holds no lock for long and can stop and start again anywhere.

The events table refuses every UPDATE but this one (migration 0015): a clear customer replaced
by its sealed form, with the content digest it would have had if sealed on arrival.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import EventSource, NewEvent
from service.store.errors import unavailability_as_store_error
from service.store.events.base import SealedNewEvent, content_digest
from service.store.personal_data.data_keys import keys_for_sealing
from service.store.personal_data.sealed_facts import payer_of_clear, sealed_data
from service.store.personal_data.sealing import MasterKey
from service.store.schema import events

BATCH_SIZE_DEFAULT = 500
BATCH_SIZE_MAX = 10_000

_COLUMNS = (
    events.c.position, events.c.stream_id, events.c.type, events.c.occurred_at,
    events.c.source, events.c.idempotency_key, events.c.content_digest, events.c.data,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SealingProgress:
    scanned: int  # events read
    sealed: int  # of which sealed now
    last_position: int  # where a next run may start (--after-position)
    # Sealed facts whose stored digest matched neither form of their clear content (a fact
    # recorded by an older digest): sealed with the provider time counted as content.
    digests_unmatched: int = 0


async def seal_recorded_facts(
    engine: AsyncEngine,
    master: MasterKey,
    *,
    after_position: int = 0,
    batch_size: int = BATCH_SIZE_DEFAULT,
    batches_max: int | None = None,
    only_payer: str | None = None,
    on_batch: Callable[[SealingProgress], None] | None = None,
) -> SealingProgress:
    """Seal every clear customer after ``after_position`` (only ``only_payer``'s, if given)."""
    if not 0 < batch_size <= BATCH_SIZE_MAX:
        raise ValueError(f"batch_size must be within 1..{BATCH_SIZE_MAX}")
    progress = SealingProgress(0, 0, after_position)
    batches = 0
    while batches_max is None or batches < batches_max:
        async with unavailability_as_store_error(), engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(*_COLUMNS)
                    .where(events.c.position > progress.last_position)
                    .order_by(events.c.position)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return progress
            sealed, unmatched = await _seal_rows(connection, master, rows, only_payer)
        batches += 1
        progress = SealingProgress(
            progress.scanned + len(rows),
            progress.sealed + sealed,
            rows[-1].position,
            progress.digests_unmatched + unmatched,
        )
        if on_batch is not None:
            on_batch(progress)
    return progress


async def _seal_rows(
    connection: AsyncConnection, master: MasterKey, rows: Sequence[Any], only_payer: str | None
) -> tuple[int, int]:
    chosen = [
        row
        for row in rows
        if (payer := payer_of_clear(master, row.data)) is not None
        and (only_payer is None or payer == only_payer)
    ]
    if not chosen:
        return 0, 0
    keys = await keys_for_sealing(
        connection, master, {payer_of_clear(master, row.data) or "" for row in chosen}
    )
    changes, unmatched = [], 0
    for row in chosen:
        sealed = sealed_data(master, keys, row.data)
        assert sealed is not None, "a chosen row has a clear customer"
        stored, digested = sealed
        time_is_content = _time_was_content(row)
        unmatched += time_is_content is None
        event = SealedNewEvent(
            stream_id=row.stream_id, type=row.type, occurred_at=row.occurred_at,
            source=EventSource(row.source), idempotency_key=row.idempotency_key, data=stored,
            time_is_content=time_is_content is not False, digest_data=digested,
        )  # fmt: skip
        changes.append(
            {"at": row.position, "new_data": stored, "new_digest": content_digest(event)}
        )
    await connection.execute(
        update(events)
        .where(events.c.position == bindparam("at"))
        .values(
            data=bindparam("new_data", type_=events.c.data.type),
            content_digest=bindparam("new_digest"),
        ),
        changes,
    )
    return len(changes), unmatched


def _time_was_content(row: Any) -> bool | None:
    """Whether the stored digest counted the provider time (a notification without eventDate
    did not); None when it matches neither form."""
    for with_time in (True, False):
        if content_digest(_clear_event(row, row.data, with_time)) == row.content_digest:
            return with_time
    return None


def _clear_event(row: Any, data: Mapping[str, Any], time_is_content: bool) -> NewEvent:
    return NewEvent(
        stream_id=row.stream_id, type=row.type, occurred_at=row.occurred_at,
        source=EventSource(row.source), idempotency_key=row.idempotency_key, data=data,
        time_is_content=time_is_content,
    )  # fmt: skip
