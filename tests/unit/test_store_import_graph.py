"""The store's modules import one another one way only: the event store's interface knows
none of its engines, and an engine never imports the module that chooses between them. (No
cycle, and nothing outside the store but the domain and settings: test_architecture.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.imports import ROOT, SERVICE, imports_of

EVENTS = "service.store.events"
IMPORT_SECONDS_MAX = 60
EVENT_MODULES = ("base", "postgres", "sqlite", "for_engine", "group_commit")
VIEW_MODULES = ("leases", "changes", "registry", "read_model_store")


@pytest.mark.parametrize("engine_module", ["postgres", "sqlite"])
def test_an_engine_module_imports_neither_the_chooser_nor_the_other_engine(
    engine_module: str,
) -> None:
    imported = imports_of(SERVICE / "store" / "events" / f"{engine_module}.py")
    assert f"{EVENTS}.base" in imported
    assert imported.isdisjoint({f"{EVENTS}.for_engine", f"{EVENTS}.postgres", f"{EVENTS}.sqlite"})


@pytest.mark.parametrize("interface_module", ["__init__", "base"])
def test_the_event_store_interface_imports_no_engine(interface_module: str) -> None:
    imported = imports_of(SERVICE / "store" / "events" / f"{interface_module}.py")
    assert imported.isdisjoint({f"{EVENTS}.postgres", f"{EVENTS}.sqlite", f"{EVENTS}.for_engine"})


@pytest.mark.parametrize(
    "module",
    [
        *(
            f"events.{name}"
            for name in ("base", "postgres", "sqlite", "for_engine", "group_commit")
        ),
        *(f"views.{name}" for name in ("leases", "changes", "registry", "read_model_store")),
    ],
)
def test_each_store_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", f"import service.store.{module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=IMPORT_SECONDS_MAX,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
