"""``serve`` beyond loopback refuses to open /v1 without tokens, unless told so explicitly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.process import free_port

STARTUP_TIMEOUT_SECONDS = 30.0


def without_ledger_settings() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}


def test_serve_on_a_public_address_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    database = tmp_path / "never-created.db"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.fronts.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ],
        env={
            **without_ledger_settings(),
            "LEDGER_DATABASE_URL": f"sqlite:///{database}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert "LEDGER_API_TOKENS" in lines[0]
    assert "LEDGER_API_ALLOW_ANONYMOUS=true" in lines[0]
    assert not database.exists()


def test_the_explicit_opt_out_starts_with_a_warning_and_opens_v1(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    database = tmp_path / "ledger.db"
    environment = {
        **without_ledger_settings(),
        "LEDGER_DATABASE_URL": f"sqlite:///{database}",
        "LEDGER_API_ALLOW_ANONYMOUS": "true",
    }
    subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "migrate"],
        env=environment,
        check=True,
        timeout=60,
    )
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.fronts.cli",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
            ],
            env=environment,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                # Relayed by a proxy and still admitted: the operator opened /v1 to everyone.
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/v1/invoices",
                    headers={"X-Forwarded-For": "203.0.113.9"},
                    timeout=1,
                )
                break
            except httpx.HTTPError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        assert answer.status_code == 200, answer.text
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert '"event": "serve.anonymous_api"' in log_path.read_text()
    assert '"level": "warning"' in log_path.read_text()


def test_without_tokens_on_loopback_a_proxied_request_is_refused(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {
        **without_ledger_settings(),
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", "migrate"],
        env=environment,
        check=True,
        timeout=60,
    )
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)],
            env=environment,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                direct = httpx.get(f"http://127.0.0.1:{port}/v1/invoices", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        relayed = httpx.get(
            f"http://127.0.0.1:{port}/v1/invoices", headers={"Via": "1.1 sidecar"}, timeout=5
        )
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert direct.status_code == 200
    assert relayed.status_code == 401
