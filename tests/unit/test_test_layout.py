"""The tests' own layout, read from the code: a test module imports no other test module and no
conftest. What tests share lives in tests/support/ (helpers, constants) or in a conftest.py
(fixtures, which pytest hands to every test below it without an import)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Every module an import names, wherever in the module (deferred imports too); for
    ``from package import name`` both the package and ``package.name``, since the name may be a
    module."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def is_test_module_or_conftest(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def cross_imports(source: str, module: str, is_package: bool = False) -> set[str]:
    return {
        f"{module} imports {imported}"
        for imported in imported_modules(source, module, is_package)
        if is_test_module_or_conftest(imported) and imported != module
    }


def test_no_module_under_tests_or_bench_imports_a_test_module_or_a_conftest() -> None:
    found = set()
    for path in sorted([*TESTS.rglob("*.py"), *(ROOT / "bench").rglob("*.py")]):
        found |= cross_imports(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == set(), "share it from tests/support/ or a conftest.py fixture instead"


def test_every_form_of_such_an_import_is_caught() -> None:
    module = "tests.e2e.test_reconciler"
    sources = {
        "from tests.e2e.test_cli import invoice_ledger": "tests.e2e.test_cli",
        "import tests.integration.test_projector": "tests.integration.test_projector",
        "from tests.unit import test_settings": "tests.unit.test_settings",
        "from tests.e2e.conftest import MAX_BODY_BYTES": "tests.e2e.conftest",
        "from .test_query_api import AUTH": "tests.e2e.test_query_api",
        "from ..integration.conftest import x": "tests.integration.conftest",
        "def f():\n    from tests.e2e.test_cli import invoice_ledger\n": "tests.e2e.test_cli",
    }
    for source, imported in sources.items():
        assert cross_imports(source, module) == {f"{module} imports {imported}"}, source


def test_support_modules_and_the_service_may_be_imported() -> None:
    source = (
        "from tests.support.cli import invoice_ledger\n"
        "from tests.support import query_api\n"
        "import service.fronts.cli\n"
        "from service.testing import test_clock\n"
    )
    assert cross_imports(source, "tests.e2e.test_reconciler") == set()
