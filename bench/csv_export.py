"""CSV export benchmark: ``GET /v1/invoices?format=csv`` over HTTP, on SQLite and PostgreSQL.

``python -m bench.csv_export [--invoices 100000] [--page-rows 500]``: writes that many invoice
rows straight into a fresh, migrated read model, serves the app on a loopback socket, streams
the whole export and prints its size, time, rows per second and time to the first bytes.
PostgreSQL is the test server (127.0.0.1:5432, user root), in a database made and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from service.app import create_app
from service.settings import load_settings
from tests.support.csv_export import insert_invoices
from tests.support.databases import PostgresServer, fresh_sqlite_database
from tests.support.query_api import AUTH, TOKEN
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

EXPORT_TIMEOUT_SECONDS = 600


def _export(database_url: str, engine: str, invoices: int, page_rows: int) -> None:
    asyncio.run(insert_invoices(database_url, invoices))
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=EXPORT_TIMEOUT_SECONDS) as client,
    ):
        started = time.perf_counter()
        first_bytes_seconds, size_bytes = None, 0
        params = {"format": "csv", "limit": str(page_rows)}
        with client.stream("GET", "/v1/invoices", params=params, headers=AUTH) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_bytes():
                if first_bytes_seconds is None:
                    first_bytes_seconds = time.perf_counter() - started
                size_bytes += len(chunk)
        seconds = time.perf_counter() - started
    print(
        f"{engine}: {invoices:,} invoices, {size_bytes / 1e6:.1f} MB in {seconds:.2f} s "
        f"({invoices / seconds:,.0f} rows/s), first bytes after "
        f"{(first_bytes_seconds or 0) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--page-rows", type=int, default=500)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, fresh_sqlite_database(Path(directory)) as url:
        _export(url, "sqlite", arguments.invoices, arguments.page_rows)
    server = PostgresServer()
    try:
        with server.fresh_database() as url:
            _export(url, "postgresql", arguments.invoices, arguments.page_rows)
    finally:
        server.drop_template()


if __name__ == "__main__":
    main()
