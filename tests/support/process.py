"""``invoice-ledger serve`` as a process of its own: its real server, limits and logging; or
started by hand, with a short shutdown grace, for tests that signal it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_SECONDS = 30.0
# The shutdown grace ``start_serve`` gives the server (LEDGER_SHUTDOWN_GRACE_SECONDS).
GRACE_SECONDS = 4.0


@dataclass
class ServedProcess:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def resident_bytes(self) -> int:
        """The server's resident memory, from /proc (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving_process(environment: dict[str, str], log_path: Path) -> Iterator[ServedProcess]:
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)],
            env={**os.environ, "LEDGER_PROJECTOR_ENABLED": "false", **environment},
            stdout=log_file,
            stderr=log_file,
        )
    served = ServedProcess(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                httpx.get(f"{served.base_url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start:\n{served.log()}") from None
                time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=20)


def start_serve(
    environment: dict[str, str], port: int, log_path: Path, *arguments: str
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port), *arguments],
            env={**os.environ, "LEDGER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS), **environment},
            stdout=log_file,
            stderr=log_file,
        )


def wait_until_healthy(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)
