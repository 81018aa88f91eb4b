""".ci/install-debian-packages installs what the list names and the machine lacks, nothing else.

dpkg-query and apt-get are replaced by scripts that answer from a list and record their
calls: the test must not install packages on the machine that runs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / ".ci" / "install-debian-packages"
SCRIPT_TIMEOUT_SECONDS = 30


def run_script(
    tmp_path: Path, listed: str, installed: set[str], *, install_fails_before_update: bool = False
) -> tuple[int, list[str]]:
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls"
    calls.touch()
    (tools / "dpkg-query").write_text(
        "#!/bin/sh\n"
        f"for p in {' '.join(sorted(installed))}; do\n"
        '  [ "$p" = "$3" ] && { printf "install ok installed"; exit 0; }\n'
        "done\nexit 1\n"
    )
    (tools / "apt-get").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = "update" ]; then touch {tmp_path}/updated; exit 0; fi\n'
        f"if [ {'1' if install_fails_before_update else '0'} = 1 ] && [ ! -e {tmp_path}/updated ];"
        " then exit 100; fi\n"
        "exit 0\n"
    )
    for tool in tools.iterdir():
        tool.chmod(0o755)
    packages = tmp_path / "debian-packages"
    packages.write_text(listed)
    result = subprocess.run(
        ["bash", SCRIPT, packages],
        env={**os.environ, "PATH": f"{tools}:/usr/bin:/bin"},
        capture_output=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    return result.returncode, calls.read_text().splitlines()


def test_only_missing_packages_are_installed_and_comments_are_ignored(tmp_path: Path) -> None:
    listed = "# tools for tests\nprometheus\n  chromium   # the browser\n\nhadolint"
    returncode, calls = run_script(tmp_path, listed, installed={"prometheus"})
    assert returncode == 0
    assert calls == ["install -y -q --no-install-recommends chromium hadolint"]


def test_nothing_is_called_when_every_package_is_installed(tmp_path: Path) -> None:
    returncode, calls = run_script(tmp_path, "prometheus\n", installed={"prometheus"})
    assert (returncode, calls) == (0, [])


def test_the_package_lists_are_refreshed_only_when_the_install_fails_without(
    tmp_path: Path,
) -> None:
    returncode, calls = run_script(
        tmp_path, "prometheus\n", installed=set(), install_fails_before_update=True
    )
    assert returncode == 0
    assert calls == [
        "install -y -q --no-install-recommends prometheus",
        "update -q",
        "install -y -q --no-install-recommends prometheus",
    ]


def test_the_ci_lists_promtools_package_and_runs_the_installer_before_the_tests() -> None:
    listed = (REPOSITORY / ".ci" / "debian-packages").read_text().split()
    assert "prometheus" in listed
    ci = (REPOSITORY / ".ci" / "run").read_text()
    assert ci.index("install-debian-packages") < ci.index("make lint") < ci.index("make test")
