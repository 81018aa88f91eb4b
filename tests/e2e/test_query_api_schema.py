"""Schemathesis against the served /v1: generated requests, valid and not, never get a 5xx,
and every answer conforms to the OpenAPI document the app generates and serves. Over a real
socket, on both engines, with a ledger seeded with awkward invoices so that documents have
something to show."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import load_settings
from tests.support.query_api import AUTH, TOKEN, deliver_all, notification
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

# Per operation and engine: 100 requests for each operation under /v1.
EXAMPLES_PER_OPERATION = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
LARGEST_AMOUNT = "9999999999999.999999"


def _seed() -> list[bytes]:
    return [
        notification("send", "INV-1", "100.00", "2026-03-01T10:00:00Z"),
        notification("partial-payment", "INV-1", "40.00", "2026-03-05T10:00:00Z"),
        notification("send", "2026/0042", "10.00", "2026-03-01T00:00:00Z"),
        notification("send", "Ünïcödé 請求書", "5", "2026-03-01T00:00:00Z", currency="JPY",
                     totalAmount="5"),
        notification("send", "KWD-1", "1.234", "9999-12-31T23:59:59+14:00", currency="KWD",
                     totalAmount="1.234", dueDate="9999-12-31"),
        notification("send", "BIG", LARGEST_AMOUNT, "0001-01-01T00:00:00Z",
                     totalAmount=LARGEST_AMOUNT, dueDate="0001-01-01"),
        notification("paid", "BIG", "0", "0001-01-02T00:00:00Z", totalAmount=LARGEST_AMOUNT),
        notification("send", "UNKNOWN", "", "2026-03-01T00:00:00Z", totalAmount=None,
                     currency="CLF"),
    ]  # fmt: skip


@pytest.fixture
def served_api(database_url: str) -> Iterator[str]:
    app_settings = load_settings(
        database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING, api_tokens=TOKEN
    )
    with serving(create_app(app_settings)) as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            deliver_all(client, _seed())
        yield base_url


SEEDED_NUMBERS = ["INV-1", "2026/0042", "Ünïcödé 請求書", "KWD-1", "BIG", "UNKNOWN"]


def _aim_at_the_seeded_ledger(case: Case, seeded_number: str | None) -> None:
    """Some requests name a seeded invoice, so its document is checked; minPosition stays
    within the seeded events, so that the other parameters are what a 400 is about."""
    path_parameters = case.path_parameters
    if seeded_number is not None and path_parameters and "invoiceNumber" in path_parameters:
        path_parameters["invoiceNumber"] = seeded_number
    if isinstance(case.query, dict) and isinstance(case.query.get("minPosition"), int):
        case.query["minPosition"] = min(case.query["minPosition"], len(_seed()))


def _query_api_schema(base_url: str) -> schemathesis.BaseSchema:
    """The document as served: what a client of this deployment would read."""
    document = httpx.get(f"{base_url}/openapi.json", timeout=30).raise_for_status().json()
    return schemathesis.openapi.from_dict(document).include(path_regex="^/v1/")


def test_the_served_document_is_valid_openapi_3_1(served_api: str) -> None:
    document = httpx.get(f"{served_api}/openapi.json", timeout=30).json()
    validate(document)  # raises naming the first violation
    assert document["openapi"].startswith("3.1")
    operation_ids = [
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    ]
    assert len(operation_ids) == len(set(operation_ids)) >= 8


VALID_REQUIRED = {"/v1/reports/collections": {"from": "2026-01-01", "to": "2026-01-31"}}


def test_no_date_parameter_accepts_an_epoch_number(served_api: str) -> None:
    document = httpx.get(f"{served_api}/openapi.json", timeout=30).json()
    dated = [
        (path, parameter)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["schema"].get("format") in ("date", "date-time")
    ]
    assert len(dated) >= 6
    for path, parameter in dated:
        assert parameter["schema"]["type"] == "string", (path, parameter)
        answer = httpx.get(
            f"{served_api}{path.replace('{invoiceNumber}', 'INV-1')}",
            params={**VALID_REQUIRED.get(path, {}), parameter["name"]: "1767225600"},
            headers=AUTH, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 400, (path, parameter["name"])
        assert parameter["name"] in answer.json()["detail"]


def test_generated_requests_never_get_a_server_error_and_answers_match_the_openapi_document(
    served_api: str,
) -> None:
    operations = [result.ok() for result in _query_api_schema(served_api).get_all_operations()]
    assert len(operations) >= 7
    # httpx, not schemathesis' own requests transport: it sends what it is given as given.
    client = httpx.Client(timeout=30)
    statuses: dict[int, int] = {}
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=st.one_of(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            ),
            seeded_number=st.sampled_from([None, *SEEDED_NUMBERS]),
        )
        def conforms(case: Case, seeded_number: str | None) -> None:
            _aim_at_the_seeded_ledger(case, seeded_number)
            request = case.as_transport_kwargs(base_url=served_api, headers=AUTH)
            response = client.request(
                request["method"], request["url"], params=request.get("params"),
                headers=request["headers"],
            )  # fmt: skip
            case.validate_response(response, checks=CHECKS, headers=AUTH)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        conforms()
    client.close()
    # Both kinds of input were generated, and the seeded invoices were found and checked.
    assert {200, 400, 404} <= set(statuses), statuses
