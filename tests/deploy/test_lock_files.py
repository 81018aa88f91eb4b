"""The lock files pin, with hashes, every dependency pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parents[2]
RUN_LOCK = REPOSITORY / "requirements" / "run.txt"
DEV_LOCK = REPOSITORY / "requirements" / "dev.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


def pins(lock: Path) -> dict[str, str]:
    """Each `name==version` line of a pip-compile output, by canonical name."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match["name"])] = match["version"]
    return found


def declared(group: str | None) -> list[Requirement]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    texts = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(text) for text in texts]


def unpinned(requirements: list[Requirement], lock: Path) -> list[str]:
    locked = pins(lock)
    problems = []
    for requirement in requirements:
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not in {lock.name}")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} but {lock.name} pins {version}")
    return problems


def test_every_runtime_dependency_is_pinned_in_both_locks_within_its_range() -> None:
    problems = unpinned(declared(None), RUN_LOCK) + unpinned(declared(None), DEV_LOCK)
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_every_development_dependency_is_pinned_in_the_development_lock() -> None:
    problems = unpinned(declared("dev"), DEV_LOCK)
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_both_locks_pin_the_same_version_of_every_package_they_share() -> None:
    run, dev = pins(RUN_LOCK), pins(DEV_LOCK)
    differing = {name: (run[name], dev[name]) for name in run if dev.get(name) != run[name]}
    assert not differing, f"run.txt and dev.txt disagree (run `make lock`): {differing}"


def test_every_pin_carries_a_hash_so_installs_are_verified() -> None:
    for lock in (RUN_LOCK, DEV_LOCK):
        # An entry is a pin line with its continuation lines (hashes, "# via" comments).
        for entry in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
            if PIN.match(entry):
                assert "--hash=sha256:" in entry, f"{lock.name}: {entry.splitlines()[0]}"


def test_uvicorn_is_bounded_to_one_minor_version_and_brings_nothing_unused() -> None:
    # service/http_server.py subclasses uvicorn's protocol classes: a new minor version is
    # taken deliberately, after the HTTP bounds' tests pass on it.
    (uvicorn,) = [r for r in declared(None) if canonicalize_name(r.name) == "uvicorn"]
    assert not uvicorn.extras, "uvicorn[standard] brings watchfiles and websockets, unused"
    versions = [spec.version for spec in uvicorn.specifier]
    lower = {spec.version for spec in uvicorn.specifier if spec.operator == ">="}
    upper = {spec.version for spec in uvicorn.specifier if spec.operator == "<"}
    assert len(lower) == len(upper) == 1, versions
    (low,), (high,) = lower, upper
    major, minor = (int(part) for part in low.split(".")[:2])
    assert high == f"{major}.{minor + 1}", f"uvicorn {uvicorn.specifier}: one minor version"
    declared_names = {canonicalize_name(r.name) for r in declared(None)}
    assert {"uvloop", "httptools"} <= declared_names
    for unused in ("watchfiles", "websockets"):
        assert unused not in pins(RUN_LOCK), f"{unused} is pinned but never used"
