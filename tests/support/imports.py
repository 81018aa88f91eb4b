"""The service's import graph, read from its source: the layout tests' one reader of imports."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def service_modules() -> dict[str, Path]:
    """Every module of the service, its packages' too, by dotted name."""
    return {module_name(path): path for path in sorted(SERVICE.rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every absolute name a module imports, wherever in it (deferred imports too): modules,
    and ``module.name`` for each name taken from one."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def imports_of(path: Path) -> set[str]:
    """Every service module a module imports, itself left out."""
    return (imported_names(path) & service_modules().keys()) - {module_name(path)}


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_outside(package: str, allowed: tuple[str, ...]) -> set[str]:
    """``module imports other`` for each import of a module of ``package`` that is neither
    within it nor within one of ``allowed``."""
    return {
        f"{module} imports {imported}"
        for module, path in service_modules().items()
        if is_within(module, package)
        for imported in imports_of(path)
        if not any(is_within(imported, ok) for ok in (package, *allowed))
    }


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each module's path of imports back to itself, if it has one (depth-first)."""
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
    return cycles
