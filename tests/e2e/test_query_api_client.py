"""A client generated from the served OpenAPI document (openapi-python-client), imported and
used against the served app: it parses every field of an invoice and of the aging report,
so a document that mistyped or left out a field would show here."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.query_api import TOKEN, deliver_all, get, organization_notification
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

GENERATOR = "openapi-python-client"
GENERATION_TIMEOUT_SECONDS = 120
PACKAGE = "generated_ledger_client"


@pytest.fixture
def served(database_url: str) -> Iterator[str]:
    settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with serving(create_app(settings)) as base_url:
        yield base_url


def _generated_client(base_url: str, directory: Path) -> ModuleType:
    """The client package generated from the document this server serves, imported."""
    generator = shutil.which(GENERATOR, path=str(Path(sys.executable).parent))
    assert generator, f"{GENERATOR} is a dev dependency: pip install -e '.[dev]'"
    document = directory / "openapi.json"
    document.write_text(json.dumps(httpx.get(f"{base_url}/openapi.json").json()))
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        [generator, "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(directory / PACKAGE)],
        check=True, capture_output=True, timeout=GENERATION_TIMEOUT_SECONDS, env=environment,
    )  # fmt: skip
    sys.path.insert(0, str(directory))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))


def _submodule(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


@pytest.fixture
def client_package(served: str, tmp_path: Path) -> Iterator[ModuleType]:
    package = _generated_client(served, tmp_path)
    yield package
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def _utc_as_z(value: Any) -> Any:
    """The client writes UTC instants as +00:00, the server as Z: the same instant."""
    if isinstance(value, dict):
        return {key: _utc_as_z(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_utc_as_z(item) for item in value]
    if isinstance(value, str) and value.endswith("+00:00"):
        return value.removesuffix("+00:00") + "Z"
    return value


LEDGER = [
    organization_notification("org-a", "send", "INV-1", "100.00", "2026-03-01T10:00:00Z",
                              dueDate="2026-03-20"),
    organization_notification("org-a", "partial-payment", "INV-1", "60.00",
                              "2026-03-10T10:00:00Z", dueDate="2026-03-20",
                              transactionId="7001"),
]  # fmt: skip


def test_a_client_generated_from_the_document_round_trips_an_invoice_and_the_aging_report(
    served: str, client_package: ModuleType
) -> None:
    with httpx.Client(base_url=served) as api:
        deliver_all(api, LEDGER)
        invoice_json = get(api, "/v1/invoices/INV-1")
        aging_json = get(api, "/v1/reports/aging", asOf="2026-04-30")
    models = _submodule(client_package, "models")
    get_invoice = _submodule(client_package, "api.ledger.get_invoice")
    report_aging = _submodule(client_package, "api.ledger.report_aging")
    with client_package.AuthenticatedClient(base_url=served, token=TOKEN) as client:
        invoice = get_invoice.sync(invoice_number="INV-1", client=client)
        aging = report_aging.sync(client=client, as_of=date(2026, 4, 30))

    assert isinstance(invoice, models.Invoice), invoice
    assert (invoice.invoice_number, invoice.organization_id, invoice.status.value) == (
        "INV-1", "org-a", "PARTIAL",
    )  # fmt: skip
    assert (invoice.total_amount, invoice.balance_amount, invoice.paid_amount) == (
        "100.00", "60.00", "40.00",
    )  # fmt: skip
    assert invoice.due_date == date(2026, 3, 20)
    assert isinstance(invoice.updated_at, datetime)
    assert invoice.customer.name == "Tanya Lee"
    [payment] = invoice.payments
    assert isinstance(payment, models.Payment)
    assert payment.date == datetime.fromisoformat(invoice_json["payments"][0]["date"])
    # Every field parsed: the client's own serialization is the server's answer.
    assert _utc_as_z(invoice.to_dict()) == invoice_json

    assert isinstance(aging, models.Aging), aging
    assert aging.as_of == date(2026, 4, 30)
    [row] = aging.items
    assert isinstance(row, models.AgingRow), "the items are typed, not dropped"
    assert (row.currency, row.days_31_to_60, row.incomplete) == ("USD", "60.00", False)
    assert _utc_as_z(aging.to_dict()) == aging_json
