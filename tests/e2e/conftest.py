from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.cybersource_sandbox import MERCHANT
from tests.support.server import serving
from tests.support.webhooks import MAX_BODY_BYTES, WEBHOOK_KEYS_SETTING


@pytest.fixture
def base_url(database_url: str) -> Iterator[str]:
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        webhook_tolerance_seconds=300,
        max_body_bytes=MAX_BODY_BYTES,
    )
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http_client:
        yield http_client


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    """The local Cybersource, over a real socket, knowing the tests' merchant credentials."""
    from service.sandbox.app import create_sandbox_app

    with serving(create_sandbox_app([MERCHANT])) as url:
        yield url
