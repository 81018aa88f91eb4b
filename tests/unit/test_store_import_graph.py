"""The store's modules import one another one way only: the event store's interface knows
none of its engines, and an engine never imports the module that chooses between them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

STORE = Path(__file__).resolve().parents[2] / "service" / "store"
PACKAGE = "service.store"
EVENTS = f"{PACKAGE}.events"
IMPORT_SECONDS_MAX = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(STORE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def store_modules() -> dict[str, Path]:
    """Every module of the store, its packages' too, by dotted name."""
    return {module_name(path): path for path in STORE.rglob("*.py")}


def store_imports(path: Path) -> set[str]:
    """Every service.store module a module imports, wherever in it (deferred imports too)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in imported if name in store_modules()} - {module_name(path)}


def store_import_graph() -> dict[str, set[str]]:
    return {name: store_imports(path) for name, path in store_modules().items()}


def cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one (depth-first)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for imported in graph.get(module, set()):
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


def test_no_store_module_imports_itself_back_through_others() -> None:
    graph = store_import_graph()
    cycles = [cycle for module in sorted(graph) if (cycle := cycle_from(graph, module))]
    assert cycles == []


@pytest.mark.parametrize("engine_module", ["postgres", "sqlite"])
def test_an_engine_module_imports_neither_the_chooser_nor_the_other_engine(
    engine_module: str,
) -> None:
    imported = store_imports(STORE / "events" / f"{engine_module}.py")
    assert f"{EVENTS}.base" in imported
    assert imported.isdisjoint({f"{EVENTS}.for_engine", f"{EVENTS}.postgres", f"{EVENTS}.sqlite"})


@pytest.mark.parametrize("interface_module", ["__init__", "base"])
def test_the_event_store_interface_imports_no_engine(interface_module: str) -> None:
    imported = store_imports(STORE / "events" / f"{interface_module}.py")
    assert imported.isdisjoint({f"{EVENTS}.postgres", f"{EVENTS}.sqlite", f"{EVENTS}.for_engine"})


@pytest.mark.parametrize("module", ["base", "postgres", "sqlite", "for_engine", "group_commit"])
def test_each_event_store_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", f"import {EVENTS}.{module}"],
        cwd=STORE.parents[1],
        capture_output=True,
        text=True,
        timeout=IMPORT_SECONDS_MAX,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_the_store_imports_nothing_of_the_service_but_the_store_the_domain_and_settings() -> None:
    # settings.py is a leaf of plain values; the store reads the database URL forms it defines.
    outside = {
        f"{path.relative_to(STORE.parents[1])}: {name}"
        for path in STORE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
        if name.startswith("service.")
        and not name.startswith(("service.store.", "service.domain."))
        and name not in ("service.store", "service.domain", "service.settings")
    }
    assert outside == set()


@pytest.mark.parametrize("module", ["leases", "changes", "registry", "read_model_store"])
def test_each_view_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}.views.{module}"],
        cwd=STORE.parents[1],
        capture_output=True,
        text=True,
        timeout=IMPORT_SECONDS_MAX,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
