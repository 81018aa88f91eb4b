"""The service as an operator installs it: a built wheel in a fresh environment, no checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.support.process import free_port
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

REPOSITORY = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_SECONDS = 300
STARTUP_TIMEOUT_SECONDS = 30.0


@pytest.mark.slow
def test_an_installed_wheel_migrates_serves_and_accepts_a_signed_delivery(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    for package in ("service", "migrations"):
        shutil.copytree(
            REPOSITORY / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, source],
        check=True,
        timeout=STEP_TIMEOUT_SECONDS,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("invoice_ledger-*.whl")
    environment_directory = tmp_path / "environment"
    venv.create(environment_directory, with_pip=True)
    python = environment_directory / "bin" / "python"
    # The same two steps as deploy/Dockerfile's builder: the locked dependencies (hashes
    # verified, binary wheels only), then the wheel without resolving anything again; so
    # `pip check` proves the lock alone is a complete runtime.
    lock = REPOSITORY / "requirements" / "run.txt"
    quiet = ["--quiet", "--disable-pip-version-check"]
    for pip_arguments in (
        ["install", *quiet, "--require-hashes", "--only-binary=:all:", "-r", lock],
        ["install", *quiet, "--no-deps", wheel],
        ["check"],
    ):
        subprocess.run(
            [python, "-m", "pip", *pip_arguments],
            check=True,
            timeout=STEP_TIMEOUT_SECONDS,
            cwd=tmp_path,
        )
    command = environment_directory / "bin" / "invoice-ledger"
    # An unrelated working directory, and no checkout on the path: only the wheel's files.
    working_directory = tmp_path / "elsewhere"
    working_directory.mkdir()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
    }
    migrated = subprocess.run(
        [command, "migrate"],
        cwd=working_directory,
        env=environment,
        capture_output=True,
        timeout=STEP_TIMEOUT_SECONDS,
    )
    assert migrated.returncode == 0, migrated.stderr.decode()

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [command, "serve", "--port", str(port)],
            cwd=working_directory,
            env=environment,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_ready(base_url, server, log_path)
        body = encode(invoice_notification("INSTALLED-1"))
        response = httpx.post(
            f"{base_url}/webhooks/cybersource", content=body, headers=signed_headers(body)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "accepted"}
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_until_ready(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not become ready:\n{log_path.read_text()}")
        time.sleep(0.1)
