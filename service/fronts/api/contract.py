"""The OpenAPI 3.1 document, generated from the routes that declare their operations.

A route joins the document by being an ``ApiRoute``: it carries the ``ApiOperation``s it
serves (an operation names its query parameter model and its response model), and
``openapi_document`` reads them from the application's route table at start-up. The
schemas are pydantic's JSON Schemas of those models, so the document cannot drift from
the answers: the same models build them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from service.read.models import AmbiguousInvoice, Error

OPENAPI_VERSION = "3.1.0"
SCHEMA_REFERENCE = "#/components/schemas/{model}"
CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"

ERROR_DESCRIPTIONS: Mapping[int, str] = {
    400: "A parameter is invalid (not ISO-8601, out of range, unknown, too long, not UTF-8, "
    "or holding a NUL character); detail names it",
    401: "Missing or wrong credentials (bearer token, or webhook signature)",
    403: "The token's scope does not allow this (operator scope needed)",
    404: "Nothing at this path (an unknown invoice, in the organization named when one is)",
    406: "None of the media types in Accept is one this operation answers with",
    409: "The request names something ambiguous or conflicting; detail says what",
    413: "The body is larger than the configured limit",
    422: "Signed but unusable: kept whole as a dead letter for an operator",
    429: "Too many wrong tokens from this client address; retry after Retry-After",
    503: "Database unavailable, or the projection behind minPosition; retry after Retry-After",
}


@dataclass(frozen=True, slots=True)
class PathParameter:
    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True, slots=True)
class ApiOperation:
    """One method on one path, as the OpenAPI document describes it."""

    path: str
    method: str
    operation_id: str
    summary: str
    response: type[BaseModel] | None
    response_description: str
    description: str = ""
    parameters: type[BaseModel] | None = None
    path_parameters: Sequence[PathParameter] = ()
    errors: Sequence[int] = (400, 401, 503)
    # Error statuses whose body is not the plain Error document.
    error_models: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    # The 200 answer is also served as CSV (format=csv or Accept: text/csv).
    csv: bool = False
    response_headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Other non-error answers: status → (description, body model or None).
    other_responses: Mapping[int, tuple[str, type[BaseModel] | None]] = field(default_factory=dict)
    request_body: Mapping[str, Any] | None = None
    # A JSON request body validated by this model (its schema joins the components).
    request_model: type[BaseModel] | None = None
    secured: bool = True
    tags: Sequence[str] = ()


class ApiRoute(Route):
    """A Starlette route that declares the operations it serves, for the document."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        operations: Sequence[ApiOperation],
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.operations = tuple(operations)


def declared_operations(routes: Iterable[BaseRoute]) -> list[ApiOperation]:
    return [
        operation
        for route in routes
        if isinstance(route, ApiRoute)
        for operation in route.operations
    ]


def openapi_document(
    operations: Sequence[ApiOperation], *, title: str, version: str, description: str
) -> dict[str, Any]:
    schemas = _component_schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, schemas)
    # Parameter models are inlined as parameters; only documents stay as components.
    parameter_models = {op.parameters.__name__ for op in operations if op.parameters}
    for name in parameter_models:
        schemas.pop(name, None)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _models(operations: Sequence[ApiOperation]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Error": Error, "AmbiguousInvoice": AmbiguousInvoice}
    for operation in operations:
        for model in (
            operation.response,
            *operation.error_models.values(),
            *(model for _, model in operation.other_responses.values()),
        ):
            if model is not None:
                found.setdefault(model.__name__, model)
    return list(found.values())


def _component_schemas(operations: Sequence[ApiOperation]) -> dict[str, Any]:
    inputs = {op.parameters.__name__: op.parameters for op in operations if op.parameters}
    inputs.update(
        (op.request_model.__name__, op.request_model) for op in operations if op.request_model
    )
    pairs: list[tuple[type[BaseModel], Any]] = [
        *((model, "validation") for model in inputs.values()),
        *((model, "serialization") for model in _models(operations)),
    ]
    _, top = models_json_schema(pairs, ref_template=SCHEMA_REFERENCE)
    return dict(top.get("$defs", {}))


def _reference(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": SCHEMA_REFERENCE.format(model=model.__name__)}


def _operation(operation: ApiOperation, schemas: Mapping[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
    }
    if operation.description:
        document["description"] = operation.description
    if operation.tags:
        document["tags"] = list(operation.tags)
    parameters = [
        {"name": p.name, "in": "path", "required": True, "description": p.description,
         "schema": dict(p.schema)}
        for p in operation.path_parameters
    ]  # fmt: skip
    if operation.parameters is not None:
        parameters += _query_parameters(schemas[operation.parameters.__name__])
    if parameters:
        document["parameters"] = parameters
    if operation.request_body is not None:
        document["requestBody"] = dict(operation.request_body)
    if operation.request_model is not None:
        document["requestBody"] = {
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": _reference(operation.request_model)}},
        }
    document["responses"] = _responses(operation)
    if not operation.secured:
        document["security"] = []
    return document


def _query_parameters(model_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", ()))
    parameters = []
    for name, schema in model_schema.get("properties", {}).items():
        schema = _present(schema)
        description = schema.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            parameter["description"] = description
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def _present(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A query parameter's schema as sent: an optional parameter is absent, never null (a
    model's ``X | None = None``), and a title repeats the name."""
    present = {k: v for k, v in schema.items() if k != "title" and (k, v) != ("default", None)}
    branches = present.get("anyOf")
    if isinstance(branches, list):
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            del present["anyOf"]
            present = {**kept[0], **present}
    return present


def _responses(operation: ApiOperation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.response_description}
    if operation.response_headers:
        success["headers"] = {
            name: dict(header) for name, header in operation.response_headers.items()
        }
    if operation.response is not None:
        content: dict[str, Any] = {JSON_MEDIA_TYPE: {"schema": _reference(operation.response)}}
        if operation.csv:
            content[CSV_MEDIA_TYPE] = {
                "schema": {
                    "type": "string",
                    "description": "RFC 4180 CSV: a header row, then the items one per row "
                    "(nested objects as dotted columns, lists left out, nulls empty).",
                }
            }
        success["content"] = content
    responses: dict[str, Any] = {"200": success}
    for status, (description, model) in operation.other_responses.items():
        answer: dict[str, Any] = {"description": description}
        if model is not None:
            answer["content"] = {JSON_MEDIA_TYPE: {"schema": _reference(model)}}
        responses[str(status)] = answer
    # Any token check may be throttled (service.fronts.failure_throttle).
    throttled = (429,) if operation.secured else ()
    errors = sorted({*operation.errors, *((406,) if operation.csv else ()), *throttled})
    for status in errors:
        model = operation.error_models.get(status, Error)
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "An error; detail says what"),
            "content": {JSON_MEDIA_TYPE: {"schema": _reference(model)}},
        }
    return responses
