"""The provider's protocol and the sandbox stand apart from the ledger: the sandbox imports only
the protocol and the domain's vocabulary (never the ledger's rules, so it cannot share their
blind spots), the protocol only the vocabulary, and the domain nothing outside itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
VOCABULARY = ("service.domain.money", "service.domain.status")


def service_imports(package: str) -> dict[str, set[str]]:
    """Every service module each module of ``package`` imports, wherever in it."""
    imports: dict[str, set[str]] = {}
    for path in sorted((SERVICE / package.replace("service.", "").replace(".", "/")).rglob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                imported.add(node.module)
        imports[str(path.relative_to(SERVICE.parent))] = {
            name for name in imported if name == "service" or name.startswith("service.")
        }
    return imports


def outside(imported: set[str], allowed: tuple[str, ...]) -> set[str]:
    return {
        name
        for name in imported
        if not any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)
    }


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("service.sandbox", ("service.sandbox", "service.cybersource", *VOCABULARY)),
        ("service.cybersource", ("service.cybersource", *VOCABULARY)),
        ("service.domain", ("service.domain",)),
    ],
)
def test_a_package_imports_only_what_it_may(package: str, allowed: tuple[str, ...]) -> None:
    imports = service_imports(package)
    assert imports, f"no modules found in {package}"
    strays = {
        module: found for module, names in imports.items() if (found := outside(names, allowed))
    }
    assert strays == {}
