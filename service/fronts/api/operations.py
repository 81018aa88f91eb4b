"""The query API's operations as the OpenAPI document declares them: paths, parameters,
answers and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX
from service.fronts.api import parameters as p
from service.fronts.api.contract import ApiOperation, PathParameter
from service.read import models

POSITION_HEADER = "X-Ledger-Position"


POSITION_HEADER_SCHEMA = {
    POSITION_HEADER: {
        "description": "Projection position the answer reflects",
        "schema": {"type": "integer"},
    }
}
INVOICE_NUMBER = PathParameter(
    "invoiceNumber",
    'Cybersource invoice number, percent-encoded as a path segment (a "/" in it as %2F)',
    {"type": "string", "minLength": 1, "maxLength": IDENTIFIER_LENGTH_MAX},
)

ONE_INVOICE_ERRORS = (400, 401, 404, 406, 409, 503)
AMBIGUOUS = {409: models.AmbiguousInvoice}


def _operation(path: str, operation_id: str, summary: str, **fields: Any) -> ApiOperation:
    return ApiOperation(
        path=path, method="get", operation_id=operation_id, summary=summary,
        response_headers=POSITION_HEADER_SCHEMA, tags=("ledger",), **fields,
    )  # fmt: skip


OPERATIONS: Mapping[str, Sequence[ApiOperation]] = {
    "/v1/invoices": [
        _operation(
            "/v1/invoices", "listInvoices", "List invoices",
            description="Invoices by update time, a page at a time (cursor). With "
            "agingBucket, the invoices behind that bucket of the aging report. As CSV, every "
            "page from the cursor on, in one answer.",
            parameters=p.InvoiceListParameters, response=models.InvoicePage,
            response_description="A page of invoices, by update time", csv=True,
        ),
    ],
    "/v1/invoices/{invoicePath:path}": [
        _operation(
            "/v1/invoices/{invoiceNumber}", "getInvoice", "One invoice, with its payments",
            parameters=p.InvoiceParameters, path_parameters=(INVOICE_NUMBER,),
            response=models.Invoice, response_description="The invoice",
            errors=ONE_INVOICE_ERRORS, error_models=AMBIGUOUS,
        ),
        _operation(
            "/v1/invoices/{invoiceNumber}/events", "listInvoiceEvents",
            "The invoice's audit trail: its events in position order",
            parameters=p.InvoiceEventsParameters, path_parameters=(INVOICE_NUMBER,),
            response=models.Events, response_description="Events in position order",
            errors=ONE_INVOICE_ERRORS, error_models=AMBIGUOUS, csv=True,
        ),
    ],
    "/v1/reports/outstanding": [
        _operation(
            "/v1/reports/outstanding", "reportOutstanding",
            "Open invoices and their balance per currency",
            parameters=p.OutstandingParameters, response=models.Outstanding,
            response_description="Per currency", csv=True,
        ),
    ],
    "/v1/reports/aging": [
        _operation(
            "/v1/reports/aging", "reportAging", "Open balance by days past due",
            description="Per currency, or per organization, customer and currency with "
            "groupBy=customer. The invoices behind a bucket: /v1/invoices?agingBucket=….",
            parameters=p.AgingParameters, response=models.Aging,
            response_description="Per currency (or customer and currency)", csv=True,
        ),
    ],
    "/v1/reports/collections": [
        _operation(
            "/v1/reports/collections", "reportCollections", "Amount collected per period",
            parameters=p.CollectionsParameters, response=models.Collections,
            response_description="Per period and currency", csv=True,
        ),
    ],
    "/v1/reports/status": [
        _operation(
            "/v1/reports/status", "reportStatus", "Invoices and amounts per status and currency",
            parameters=p.StatusParameters, response=models.StatusReport,
            response_description="Per status and currency", csv=True,
        ),
    ],
}  # fmt: skip
