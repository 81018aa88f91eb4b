"""A rebuild that folds ranges of streams in several processes gives the read model that
incremental projection gives."""

from __future__ import annotations

import uuid

import pytest

from service.bootstrap import RebuildEngines
from service.projections.rebuild import rebuild_invoices
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.events.for_engine import event_store_for
from service.store.stream_partitions import stream_boundaries
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.histories import random_history
from tests.support.projections import projector, read_model

pytestmark = pytest.mark.anyio


async def test_a_rebuild_in_two_processes_equals_incremental_projection(
    postgresql_database_url: str,
) -> None:
    url = resolve_database_url(postgresql_database_url)
    engine = create_engine(url)
    try:
        store = event_store_for(engine)
        for seed in range(4):
            for event in random_history(seed, 12, 60, prefix=f"{uuid.uuid4().hex[:6]}-"):
                await store.append([event])
            await projector(engine, batch_size=9).catch_up()
        incremental = await read_model(engine)
        horizon = await store.last_position()
        # Ranges small enough that pages end inside streams and ranges end inside pages.
        assert len(await stream_boundaries(engine, 8, horizon)) >= 4
        position = await rebuild_invoices(
            store,
            SqlReadModelStore(engine),
            events_per_page=7,
            workers=2,
            engines=RebuildEngines(url),
        )
        assert position == horizon
        assert await read_model(engine) == incremental
    finally:
        await engine.dispose()


async def test_stream_boundaries_never_split_a_stream(postgresql_database_url: str) -> None:
    engine = create_engine(resolve_database_url(postgresql_database_url))
    try:
        store = event_store_for(engine)
        for event in random_history(7, 5, 80, prefix="s-"):
            await store.append([event])
        horizon = await store.last_position()
        boundaries = await stream_boundaries(engine, 20, horizon)
        streams = {event.stream_id for event in await store.read_after(0, 1000)}
        assert boundaries == sorted(set(boundaries))
        assert set(boundaries) <= streams
        assert len(boundaries) <= len(streams) - 1
    finally:
        await engine.dispose()
