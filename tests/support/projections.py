"""The projector and the read model it writes, as integration tests drive and read them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.projections.projector import InvoiceProjector
from service.store.events.for_engine import event_store_for
from service.store.schema import invoice_collections, invoice_versions, invoices
from service.store.views.changes import ProjectedInvoice
from service.store.views.read_model_store import SqlReadModelStore


async def read_model(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    tables = {
        "invoices": invoices,
        "versions": invoice_versions,
        "collections": invoice_collections,
    }
    async with engine.connect() as connection:
        return {
            name: [
                row._asdict()
                for row in await connection.execute(select(table).order_by(*table.primary_key))
            ]
            for name, table in tables.items()
        }


def projector(engine: AsyncEngine, owner: str = "p1", batch_size: int = 7) -> InvoiceProjector:
    return InvoiceProjector(
        event_store_for(engine), SqlReadModelStore(engine), owner=owner, batch_size=batch_size
    )


async def project(engine: AsyncEngine, *projected: ProjectedInvoice) -> None:
    """Write projected invoices as the projector would, as one batch of the test's lease."""
    read_models = SqlReadModelStore(engine)
    assert await read_models.acquire_lease("test", 15)
    position = await read_models.checkpoint()
    await read_models.apply(
        projected, owner="test", from_position=position, to_position=position + 1
    )
