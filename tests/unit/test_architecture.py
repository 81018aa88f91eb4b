"""The layout's rules, read from the code: which part of the service may import which, where
engines are made, and how long a module may grow. See the README's map of the code."""

from __future__ import annotations

import pytest

from tests.support.imports import (
    ROOT,
    import_cycles,
    imported_names,
    imports_of,
    imports_outside,
    is_within,
    service_modules,
)

MODULE_LINES_MAX = 400
# Engines are made by the store (its engine factory, the migrations runner) and, for every
# entry point, by the one wiring module.
ENGINE_MAKERS = {"service.bootstrap"}
ENGINE_FACTORIES = {
    "service.store.database.create_engine",
    "sqlalchemy.ext.asyncio.create_async_engine",
    "sqlalchemy.create_engine",
}
FRONTS = ("service.fronts.api", "service.fronts.console", "service.fronts.cli")
# The services between the store (and the provider's protocol, service/cybersource) and the
# fronts; none imports another.
SERVICES = (
    "service.ingest",
    "service.projections",
    "service.reconciler",
    "service.read",
    "service.alerting",
)
# What the sandbox and the protocol may know of the domain: its vocabulary, never the
# ledger's rules (the sandbox must not share their blind spots).
VOCABULARY = ("service.domain.money", "service.domain.status")


def test_no_module_of_the_service_is_longer_than_the_bound() -> None:
    long = {
        f"{module}: {lines} lines"
        for module, path in service_modules().items()
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES_MAX
    }
    assert long == set()


def test_settings_import_no_module_of_the_service() -> None:
    assert any(is_within(module, "service.settings") for module in service_modules())
    assert imports_outside("service.settings", ()) == set()


def test_the_domain_imports_nothing_but_itself() -> None:
    assert imports_outside("service.domain", ()) == set()


def test_the_store_imports_only_the_domain_and_settings() -> None:
    # settings is a leaf of plain values; the store reads the database URL forms it defines.
    assert imports_outside("service.store", ("service.domain", "service.settings")) == set()


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("service.sandbox", ("service.cybersource", *VOCABULARY)),
        ("service.cybersource", VOCABULARY),
    ],
)
def test_the_sandbox_and_the_protocol_import_only_what_they_may(
    package: str, allowed: tuple[str, ...]
) -> None:
    assert any(is_within(module, package) for module in service_modules())
    assert imports_outside(package, allowed) == set()


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
        for module, path in service_modules().items()
        if is_within(module, front)
        for imported in imports_of(path)
        if any(is_within(imported, other) for other in others)
    }
    assert reaching == set()


def test_outside_the_store_one_module_makes_database_engines() -> None:
    makers = {
        module
        for module, path in service_modules().items()
        if not is_within(module, "service.store") and imported_names(path) & ENGINE_FACTORIES
    }
    assert makers == ENGINE_MAKERS


def test_no_module_of_the_service_imports_itself_back_through_others() -> None:
    graph = {module: imports_of(path) for module, path in service_modules().items()}
    assert import_cycles(graph) == []


def test_no_migration_imports_the_service() -> None:
    # A migration is frozen history: live code it imported would change what it does.
    importing = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "migrations").rglob("*.py")
        if any(is_within(name, "service") for name in imported_names(path))
    }
    assert importing == set()
