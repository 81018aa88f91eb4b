"""An event store whose facts keep their payers' personal data sealed.

``PersonalDataEventStore`` wraps an engine's store (composition, as eventsourcing's mapper
wraps its recorder): it seals each new fact's customer under its payer's data key before
the append, and opens what it reads, answering an erased payer's customer as erased. Without
a master key it seals nothing (facts are stored in clear, as before the key was set) and
opens nothing: every sealed customer then reads as erased, which is what it is once start-up
has found no data key left (``SqlDataKeys.verify``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.domain.events import NewEvent, RecordedEvent
from service.store.events.base import (
    AppendResult,
    Delivery,
    DeliveryResult,
    EventStore,
    InboxEntry,
)
from service.store.personal_data.data_keys import SqlDataKeys
from service.store.personal_data.sealed_facts import (
    opened_events,
    payers_to_seal,
    sealed_event,
    sealed_payers,
)


class PersonalDataEventStore:
    def __init__(self, store: EventStore, data_keys: SqlDataKeys) -> None:
        self._store = store
        self._data_keys = data_keys

    async def append(
        self, new_events: Sequence[NewEvent], inbox_entry: InboxEntry | None = None
    ) -> list[AppendResult]:
        [delivery] = await self._sealed([Delivery(new_events, inbox_entry)])
        return await self._store.append(delivery.events, delivery.inbox_entry)

    async def append_group(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
        return await self._store.append_group(await self._sealed(deliveries))

    async def _sealed(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        master = self._data_keys.master
        if master is None:
            return list(deliveries)
        # One lookup for the whole group: its payers' keys, made for the new ones.
        payers = payers_to_seal(
            master, (event.data for delivery in deliveries for event in delivery.events)
        )
        if not payers:
            return list(deliveries)
        keys = await self._data_keys.for_sealing(payers)
        return [
            Delivery([sealed_event(master, keys, event) for event in delivery.events],
                     delivery.inbox_entry)
            for delivery in deliveries
        ]  # fmt: skip

    async def _opened(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        payers = sealed_payers(events)
        if not payers:
            return events
        return opened_events(events, await self._data_keys.for_opening(payers))

    async def record_inbox(self, entry: InboxEntry) -> int:
        return await self._store.record_inbox(entry)

    async def read_after(self, position: int, limit: int) -> list[RecordedEvent]:
        return await self._opened(await self._store.read_after(position, limit))

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self._opened(await self._store.read_stream(stream_id))

    async def read_streams(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, list[RecordedEvent]]:
        streams = await self._store.read_streams(stream_ids, up_to_position)
        opened = await self._opened([event for events in streams.values() for event in events])
        by_position = {event.position: event for event in opened}
        return {
            stream: [by_position[event.position] for event in events]
            for stream, events in streams.items()
        }

    async def read_in_stream_order(
        self, after: tuple[str, int] | None, limit: int, up_to_position: int
    ) -> list[RecordedEvent]:
        return await self._opened(
            await self._store.read_in_stream_order(after, limit, up_to_position)
        )

    async def last_position(self) -> int:
        return await self._store.last_position()

    async def highest_position(self) -> int:
        return await self._store.highest_position()

    async def inbox_entries(self, limit: int = 100) -> list[Mapping[str, Any]]:
        return await self._store.inbox_entries(limit)
