"""CSV exports as tests read them: a JSON item as its CSV row should read, an answer's header
and rows, and invoices written straight into the read model for an export of many pages."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import insert

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import invoices


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flattened(item: dict[str, Any]) -> dict[str, str]:
    """A JSON item as its CSV row should read: nested objects dotted, the list of payments left
    out, the list of provisional amounts' names one field, the names separated by spaces."""
    row = {}
    for key, value in item.items():
        if key == "payments":
            continue
        if key == "provisional":
            row[key] = " ".join(value)
        elif key == "data":
            row[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        elif key == "customer":
            for field in ("name", "email", "erased"):
                row[f"customer.{field}"] = _cell((value or {}).get(field))
        else:
            row[key] = _cell(value)
    return row


def csv_rows(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.text.endswith("\r\n")
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


async def insert_invoices(database_url: str, count: int) -> None:
    """Read rows straight into the read model: the export reads nothing else."""
    engine = create_engine(resolve_database_url(database_url))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "organization_id": "org-bulk", "invoice_number": f"BULK-{n:06d}", "status": "SENT",
            "currency": "USD", "total_amount": Decimal("100.00"),
            "balance_amount": Decimal("100.00"), "total_provisional": False,
            "balance_provisional": False, "due_date": None,
            "customer_name": f"Customer {n}", "customer_email": None, "payments": [],
            "last_event_at": start, "last_position": n + 1,
            "updated_at": start + timedelta(seconds=n),
        }
        for n in range(count)
    ]  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(invoices), rows)
    finally:
        await engine.dispose()
