"""/v1/exports: accounting exports of the payments journal and of the open invoices.

Read tokens list exports and download them again (the same bytes for the same format and
currency); only operator tokens create one (403 ``insufficient_scope`` otherwise), since
creating a payments export marks what it holds as posted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX
from service.fronts.api import parameters as p
from service.fronts.api.contract import CSV_MEDIA_TYPE, ApiOperation, ApiRoute, PathParameter
from service.fronts.api.exports import CSV_CONTENT_TYPE, answers_csv
from service.fronts.auth import ApiAuthorizer, Caller, Scope, require_every_merchant
from service.fronts.errors import ApiError, bad_parameter
from service.fronts.merchant_scope import MerchantOrganizations
from service.read.accounting import (
    AccountingExport,
    AccountingExportDocument,
    AccountingExportList,
    AccountingExports,
    ExportKind,
    PeriodRefused,
    UnknownExport,
)
from service.read.accounting_files import FileFormat, FormatRefused, filename, media_type, render
from service.store.accounting_exports import EXPORTS_PAGE_SIZE_MAX, ExportTooLarge

EXPORT_ID_MAX = 2**63 - 1


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    kind: ExportKind
    period_from: p.Day = Field(alias="from", description="First day of the period (UTC).")
    period_to: p.Day = Field(alias="to", description="Last day, inclusive (UTC).")
    merchant: str | None = Field(
        None, max_length=IDENTIFIER_LENGTH_MAX,
        description="Only this merchant's organizations (several merchants configured); a "
        "payment is still posted once, in whichever merchant's export first holds it.",
    )  # fmt: skip


class ExportListParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)

    limit: int = Field(100, ge=1, le=EXPORTS_PAGE_SIZE_MAX)
    cursor: str | None = Field(
        None, max_length=20, pattern=r"^[0-9]+$", description="The nextCursor of a page."
    )


class ExportDownloadParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)

    format: FileFormat = Field(
        "json",
        description="json; csv (every field, one line per row); xero (Xero's bank statement "
        "import); quickbooks (QuickBooks Online's 3-column bank transactions upload).",
    )
    currency: str | None = Field(
        None, pattern=r"^[A-Z]{3}$", description="Only the lines in this currency."
    )


EXPORT_ID = PathParameter(
    "exportId", "The export's id", {"type": "integer", "minimum": 1, "maximum": EXPORT_ID_MAX}
)
OPERATIONS = (
    ApiOperation(
        path="/v1/exports", method="get", operation_id="listAccountingExports",
        summary="The accounting exports made, newest first",
        parameters=ExportListParameters, response=AccountingExportList,
        response_description="A page of exports", tags=("exports",),
    ),
    ApiOperation(
        path="/v1/exports", method="post", operation_id="createAccountingExport",
        summary="Record a new export: the payments not exported before, or the receivables",
        description="Operator scope. A payments export holds the period's payments that no "
        "earlier export posted, and reverses exported lines that no longer stand; what it "
        "holds is then posted, so the same period again gives only what is new.",
        request_model=ExportRequest, response=AccountingExport,
        response_description="The recorded export", errors=(400, 401, 403, 413, 503),
        tags=("exports",),
    ),
    ApiOperation(
        path="/v1/exports/{exportId}", method="get", operation_id="getAccountingExport",
        summary="Download an export again: the same bytes for the same format and currency",
        parameters=ExportDownloadParameters, path_parameters=(EXPORT_ID,),
        response=AccountingExportDocument, response_description="The export and its lines",
        errors=(400, 401, 404, 503), csv=True, tags=("exports",),
    ),
)  # fmt: skip

Handler = Callable[[Request, Caller], Awaitable[Response]]


class AccountingExportApi:
    def __init__(
        self,
        exports: AccountingExports,
        authorizer: ApiAuthorizer,
        merchants: MerchantOrganizations | None = None,
    ) -> None:
        self._exports = exports
        self._authorizer = authorizer
        self._merchants = merchants or MerchantOrganizations({})

    def routes(self) -> list[ApiRoute]:
        endpoints = {
            "listAccountingExports": self._endpoint(self.list, Scope.READ),
            "createAccountingExport": self._endpoint(self.create, Scope.OPERATOR),
            "getAccountingExport": self._endpoint(self.download, Scope.READ),
        }
        by_path: dict[str, list[ApiOperation]] = {}
        for operation in OPERATIONS:
            by_path.setdefault(operation.path, []).append(operation)
        return [
            ApiRoute(
                path,
                _dispatch({op.method.upper(): endpoints[op.operation_id] for op in operations}),
                methods=[op.method.upper() for op in operations],
                operations=operations,
            )
            for path, operations in by_path.items()
        ]

    def _endpoint(self, handler: Handler, scope: Scope) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # Deliveries and exports span merchants: not for a token limited to some.
            caller = require_every_merchant(self._authorizer.check(request, scope))
            try:
                return await handler(request, caller)
            except UnknownExport:
                raise ApiError(404, "unknown_export", "no export with this id") from None
            except PeriodRefused as refused:
                raise bad_parameter("to", str(refused)) from None
            except FormatRefused as refused:
                raise bad_parameter(refused.parameter, refused.detail) from None
            except ExportTooLarge:
                raise ApiError(400, "export_too_large", "choose a shorter period") from None

        return endpoint

    async def list(self, request: Request, caller: Caller) -> Response:
        parameters = p.parse(ExportListParameters, _query(request))
        before_id = None
        if parameters.cursor is not None:
            before_id = int(parameters.cursor)
            if not 0 < before_id <= EXPORT_ID_MAX:
                raise bad_parameter("cursor", "is not a cursor this API issued")
        items = await self._exports.exports(parameters.limit, before_id)
        next_cursor = str(items[-1].id) if len(items) == parameters.limit else None
        return _json(AccountingExportList(items=items, nextCursor=next_cursor))

    async def create(self, request: Request, caller: Caller) -> Response:
        wanted = await _export_request(request)
        merchant = wanted.merchant
        created = await self._exports.create(
            wanted.kind, wanted.period_from, wanted.period_to, caller.name, datetime.now(UTC),
            merchant=merchant,
            organizations=None if merchant is None else self._merchants.of(merchant),
        )  # fmt: skip
        return _json(created)

    async def download(self, request: Request, caller: Caller) -> Response:
        query = _query(request)
        if "format" not in query and answers_csv(request, None, csv_offered=True):
            query["format"] = "csv"
        parameters = p.parse(ExportDownloadParameters, query)
        export, lines = await self._exports.export(_export_id(request))
        content = render(export, lines, parameters.format, parameters.currency)
        kind = media_type(parameters.format)
        name = filename(export, parameters.format, parameters.currency)
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if kind == CSV_MEDIA_TYPE:
            kind = CSV_CONTENT_TYPE
        return Response(content, media_type=kind, headers=headers)


def _dispatch(
    endpoints: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        # Starlette routes HEAD wherever GET is; it is answered as the GET (without its body).
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return endpoint


def _query(request: Request) -> dict[str, str]:
    return p.query_dict(request.scope.get("query_string", b""))


def _json(document: BaseModel) -> Response:
    return JSONResponse(document.model_dump(mode="json", by_alias=True))


def _export_id(request: Request) -> int:
    text = request.path_params["exportId"]
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        raise bad_parameter("exportId", "must be an export id, a positive integer")
    export_id = int(text)
    if not 0 < export_id <= EXPORT_ID_MAX:
        raise bad_parameter("exportId", "must be an export id, a positive integer")
    return export_id


async def _export_request(request: Request) -> ExportRequest:
    example = '{"kind": "payments", "from": "2026-03-01", "to": "2026-03-31"}'
    return await p.json_body(request, ExportRequest, example)
