"""The ``invoice-ledger`` command, run as a real process with its configuration in the
environment."""

from __future__ import annotations

import os
import subprocess
import sys


def invoice_ledger(
    *arguments: str, environment: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "service.fronts.cli", *arguments],
        input=stdin,
        capture_output=True,
        env={**os.environ, **environment},
        timeout=60,
    )
