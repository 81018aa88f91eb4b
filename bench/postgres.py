"""A throwaway PostgreSQL database for one benchmark run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

HOST = os.environ.get("BENCH_POSTGRES_HOST", "127.0.0.1")
PORT = int(os.environ.get("BENCH_POSTGRES_PORT", "5432"))
USERS = ("postgres", "root")


async def _admin(statement: str) -> str:
    error: BaseException | None = None
    for user in USERS:
        try:
            connection = await asyncpg.connect(
                host=HOST, port=PORT, user=user, database="postgres", timeout=5
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as failure:
            error = failure
            continue
        try:
            await connection.execute(statement)
            return user
        finally:
            await connection.close()
    raise SystemExit(f"PostgreSQL at {HOST}:{PORT} is not reachable: {error}")


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    user = asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{user}@{HOST}:{PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
