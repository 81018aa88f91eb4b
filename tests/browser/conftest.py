"""Debian's Chromium, driven by Playwright; never a browser that Playwright would download."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.databases import in_ci

CHROMIUM = Path(os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGUMENTS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots are kept for people to look at after a run; var/ is ignored by git.
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Request it after the fixtures that serve the app: while Playwright's sync API runs,
    its event loop is this thread's, and a fixture calling asyncio.run (migrations, creating
    or dropping a database) must be done before it starts and after it stops."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install the Debian package chromium"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
