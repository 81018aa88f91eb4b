""".ci/audit (`make audit`): a vulnerability found fails, an unreachable vulnerability service
is reported and does not. pip-audit is replaced by a script that answers as it would, so the
test neither needs nor touches the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / ".ci" / "audit"
SCRIPT_TIMEOUT_SECONDS = 60
CLEAN = {"name": "starlette", "version": "1.10.0", "vulns": []}
NOT_FOUND = {
    "name": "alembic",
    "skip_reason": "Dependency not found on PyPI and could not be audited: alembic (1.20.1)",
}
VULNERABLE = {
    "name": "h11",
    "version": "0.14.0",
    "vulns": [{"id": "GHSA-vqfr-h8mv-ghfj", "fix_versions": ["0.16.0"], "aliases": []}],
}


def audit(tmp_path: Path, *, report: list[dict[str, object]] | None, stderr: str = "",
          exit_code: int = 0) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run .ci/audit with a pip-audit that writes ``report`` (None: writes nothing) to the
    file named by --output, prints ``stderr`` and exits with ``exit_code``."""
    fake = tmp_path / "pip-audit"
    answer = json.dumps({"dependencies": report, "fixes": []}) if report is not None else ""
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "arguments = sys.argv[1:]\n"
        "assert '--require-hashes' in arguments and '--disable-pip' in arguments, arguments\n"
        f"answer = {answer!r}\n"
        "if answer:\n"
        "    open(arguments[arguments.index('--output') + 1], 'w').write(answer)\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({exit_code})\n"
    )
    fake.chmod(0o755)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "requirements/run.txt", "requirements/dev.txt"],
        cwd=REPOSITORY,
        env={**os.environ, "PIP_AUDIT": str(fake)},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )


def test_lock_files_without_known_vulnerabilities_pass(tmp_path: Path) -> None:
    result = audit(tmp_path, report=[CLEAN])
    assert result.returncode == 0, result.stderr
    assert "no known vulnerability in the 1 packages audited" in result.stderr


def test_a_known_vulnerability_fails_naming_the_package_and_the_fix(tmp_path: Path) -> None:
    result = audit(tmp_path, report=[CLEAN, VULNERABLE], exit_code=1)
    assert result.returncode == 1
    assert "h11 0.14.0: GHSA-vqfr-h8mv-ghfj (fixed in 0.16.0)" in result.stderr


def test_packages_the_service_could_not_look_up_are_reported_not_failed(tmp_path: Path) -> None:
    result = audit(tmp_path, report=[CLEAN, NOT_FOUND])
    assert result.returncode == 0, result.stderr
    assert "could not audit 1 of 2 packages (alembic" in result.stderr


def test_an_unreachable_vulnerability_service_is_reported_not_failed(tmp_path: Path) -> None:
    result = audit(
        tmp_path,
        report=None,
        stderr="requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev')",
        exit_code=1,
    )
    assert result.returncode == 0, result.stderr
    assert "could not be reached" in result.stderr


def test_any_other_pip_audit_failure_fails(tmp_path: Path) -> None:
    result = audit(tmp_path, report=None, stderr="Hash mismatch for starlette", exit_code=1)
    assert result.returncode == 2
    assert "Hash mismatch" in result.stderr
