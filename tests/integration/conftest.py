"""Fixtures shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

GRANTS = Path(__file__).parents[2] / "deploy" / "postgres" / "least-privilege.sql"


@pytest.fixture
async def service_role_url(postgresql_database_url: str) -> AsyncIterator[str]:
    role = f"ledger_service_{uuid.uuid4().hex[:8]}"
    url = make_url(postgresql_database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        await admin.execute(GRANTS.read_text().replace("invoice_ledger_service", role))
        yield url.set(username=role).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
        await admin.close()
