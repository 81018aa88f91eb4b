"""The layout's rules, read from the code: which part of the service may import which, where
engines are made, and how long a module may grow. See the README's map of the code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
MODULE_LINES_MAX = 400
# Engines are made by the store (its engine factory, the migrations runner) and, for every
# entry point, by the one wiring module.
ENGINE_MAKERS = {"service.bootstrap"}
FRONTS = ("service.fronts.api", "service.fronts.console", "service.fronts.cli")
# The services between the store (and the provider's protocol, service/cybersource) and the
# fronts; none imports another. The sandbox's own rule is in test_protocol_imports.py.
SERVICES = ("service.ingest", "service.projections", "service.reconciler", "service.read")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def service_modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SERVICE.rglob("*.py")):
        yield module_name(path), path


def imports_of(path: Path) -> set[str]:
    """Every service module a module imports, wherever in it (deferred imports too)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    known = {name for name, _ in service_modules()}
    return {name for name in imported if name in known}


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_outside(package: str, allowed: tuple[str, ...]) -> set[str]:
    return {
        f"{module} imports {imported}"
        for module, path in service_modules()
        if is_within(module, package)
        for imported in imports_of(path)
        if not any(is_within(imported, ok) for ok in (package, *allowed))
    }


def test_no_module_of_the_service_is_longer_than_the_bound() -> None:
    long = {
        f"{module}: {lines} lines"
        for module, path in service_modules()
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES_MAX
    }
    assert long == set()


def test_settings_import_no_module_of_the_service() -> None:
    assert imports_of(SERVICE / "settings.py") == set()


def test_the_domain_imports_nothing_but_itself() -> None:
    assert imports_outside("service.domain", ()) == set()


def test_the_store_imports_only_the_domain_and_settings() -> None:
    assert imports_outside("service.store", ("service.domain", "service.settings")) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_nor_any_front(service: str) -> None:
    allowed = (
        "service.domain",
        "service.cybersource",
        "service.store",
        "service.settings",
        "service.metrics",
    )
    assert imports_outside(service, allowed) == set()


@pytest.mark.parametrize("front", FRONTS)
def test_a_front_imports_no_other_front(front: str) -> None:
    others = [other for other in FRONTS if other != front]
    reaching = {
        f"{module} imports {imported}"
        for module, path in service_modules()
        if is_within(module, front)
        for imported in imports_of(path)
        if any(is_within(imported, other) for other in others)
    }
    assert reaching == set()


def makes_engines(path: Path) -> bool:
    """Whether a module imports an engine factory: the store's, or SQLAlchemy's own."""
    factories = {("service.store.database", "create_engine"),
                 ("sqlalchemy.ext.asyncio", "create_async_engine"),
                 ("sqlalchemy", "create_engine")}  # fmt: skip
    return any(
        (node.module, alias.name) in factories
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    )


def test_outside_the_store_one_module_makes_database_engines() -> None:
    makers = {
        module
        for module, path in service_modules()
        if not is_within(module, "service.store") and makes_engines(path)
    }
    assert makers == ENGINE_MAKERS


def test_no_module_of_the_service_imports_itself_back_through_others() -> None:
    graph = {module: imports_of(path) for module, path in service_modules()}
    # A package's __init__ is imported with any of its modules: an edge to it is an edge to
    # the package, which is no cycle unless the package's own code imports back.
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            module, trail = stack.pop()
            for imported in graph.get(module, set()):
                if imported == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*trail, imported]))
    assert cycles == []


def test_no_migration_imports_the_service() -> None:
    # A migration is frozen history: live code it imported would change what it does.
    importing = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "migrations").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("service"))
        or (
            isinstance(node, ast.Import)
            and any(alias.name.startswith("service") for alias in node.names)
        )
    }
    assert importing == set()
