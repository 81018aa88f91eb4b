"""Master keys for personal data, and reading every value a database holds (to prove an
erased payer's name and email are nowhere in it)."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.schema import metadata

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_MASTER_KEY = base64.b64encode(bytes(range(1, 33))).decode()


async def every_stored_value(engine: AsyncEngine) -> str:
    """Every row of every table in the database (the ones the schema does not describe too,
    such as alembic_version), as one lower-cased text to search."""
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        chunks: list[str] = []
        for name in sorted(names):
            table = metadata.tables.get(name)
            if table is None:
                continue  # alembic_version: a revision id
            for row in await connection.execute(select(table)):
                chunks.append(json.dumps([_text(value) for value in row], default=str))
        assert set(names) - set(metadata.tables) <= {"alembic_version", "sqlite_sequence"}
    return "\n".join(chunks).lower()


def _text(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value
