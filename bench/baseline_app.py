"""The baseline: a bare Starlette endpoint that does one INSERT per request, nothing else;
and ``POST /bare``, which reads the body and answers without touching the database (the HTTP
stack's own limit)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create_baseline_app(dsn: str, pool_size: int) -> Starlette:
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS baseline_deliveries"
            " (id bigserial PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(),"
            " body bytea NOT NULL)"
        )
        yield
        await pool.close()

    async def receive(request: Request) -> Response:
        assert pool is not None
        await pool.execute(
            "INSERT INTO baseline_deliveries (body) VALUES ($1)", await request.body()
        )
        return JSONResponse({"status": "accepted"})

    async def bare(request: Request) -> Response:
        await request.body()
        return JSONResponse({"status": "accepted"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhooks/cybersource", receive, methods=["POST"]),
            Route("/bare", bare, methods=["POST"]),
            Route("/healthz", health),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=20)
    arguments = parser.parse_args()
    uvicorn.run(
        create_baseline_app(arguments.dsn, arguments.pool_size),
        host="127.0.0.1",
        port=arguments.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
