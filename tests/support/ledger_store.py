"""Reading back what the ledger stored: its events and the inbox of the deliveries it received."""

from __future__ import annotations

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for


async def read_ledger(database_url: str) -> tuple[list[object], list[dict[str, object]]]:
    engine = create_engine(resolve_database_url(database_url))
    store = event_store_for(engine)
    try:
        return await store.read_after(0, limit=1000), await store.inbox_entries(limit=1000)  # type: ignore[return-value]
    finally:
        await engine.dispose()
