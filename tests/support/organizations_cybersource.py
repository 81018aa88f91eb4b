"""A Cybersource that keeps each organization's invoices apart, for the reconciler's tests of
acting for several organizations.

It checks every request's HTTP Signature with ``verify_request`` (the sandbox's check), answers
Get Invoice Details, Get List of Invoices and Get Transaction Details from the invoices and
transactions of the organization named in ``v-c-merchant-id``, and records which organization
each call was made for. A queue of canned answers lets a test make Cybersource refuse or fail,
or answer what it never should.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.cybersource.http_signature import (
    MerchantCredentials,
    SignatureMismatch,
    verify_request,
)


@dataclass(frozen=True)
class RecordedCall:
    organization_id: str
    method: str
    path_and_query: str


@dataclass
class OrganizationsCybersource:
    credentials: Sequence[MerchantCredentials]
    # Invoice documents (as Get Invoice Details answers them) by organization and number.
    invoices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Transaction Details documents by organization and transaction id.
    transactions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    canned: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    # Statuses answered (with an error body) to the next Transaction Details calls.
    transaction_faults: deque[int] = field(default_factory=deque)

    def add_invoice(self, organization_id: str, number: str, status: str, total: str) -> None:
        self.invoices.setdefault(organization_id, {})[number] = {
            "id": number,
            "status": status,
            "submitTimeUtc": "2026-01-05T10:00:00Z",
            "customerInformation": {"name": "Tanya Lee", "email": "tanya@example.com"},
            "invoiceInformation": {"invoiceNumber": number, "dueDate": "2026-12-31"},
            "orderInformation": {
                "amountDetails": {"totalAmount": total, "balanceAmount": total, "currency": "USD"}
            },
            "invoiceHistory": [{"event": "SEND", "date": "2026-01-05T09:00:00Z"}],
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/invoicing/v2/invoices", self._list, methods=["GET"]),
                Route("/invoicing/v2/invoices/{number}", self._details, methods=["GET"]),
                Route("/tss/v2/transactions/{id}", self._transaction, methods=["GET"]),
            ]
        )

    async def _organization(self, request: Request) -> str | Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            verify_request(
                {credentials.key_id: credentials for credentials in self.credentials},
                method=request.method,
                path_and_query=target,
                headers=request.headers,
                body=await request.body(),
            )
        except SignatureMismatch as mismatch:
            return _error(401, "AUTHENTICATION_FAILED", str(mismatch))
        organization = request.headers["v-c-merchant-id"]
        self.calls.append(RecordedCall(organization, request.method, target))
        if self.canned:
            status, document = self.canned.popleft()
            return JSONResponse(document, status_code=status)
        return organization

    async def _details(self, request: Request) -> Response:
        organization = await self._organization(request)
        if isinstance(organization, Response):
            return organization
        invoice = self.invoices.get(organization, {}).get(request.path_params["number"])
        if invoice is None:
            return _error(404, "NOTFOUND", "no such invoice")
        return JSONResponse(invoice)

    async def _transaction(self, request: Request) -> Response:
        organization = await self._organization(request)
        if isinstance(organization, Response):
            return organization
        if self.transaction_faults:
            return _error(self.transaction_faults.popleft(), "SYSTEM_ERROR", "injected")
        transaction = self.transactions.get(organization, {}).get(request.path_params["id"])
        if transaction is None:
            return _error(404, "NOTFOUND", "no such transaction")
        return JSONResponse(transaction)

    async def _list(self, request: Request) -> Response:
        organization = await self._organization(request)
        if isinstance(organization, Response):
            return organization
        status = request.query_params.get("status")
        offset = int(request.query_params["offset"])
        limit = int(request.query_params["limit"])
        matching = [
            {"id": invoice["id"], "status": invoice["status"]}
            for invoice in self.invoices.get(organization, {}).values()
            if status is None or invoice["status"] == status
        ]
        return JSONResponse(
            {"totalInvoices": len(matching), "invoices": matching[offset : offset + limit]}
        )


def _error(status_code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"reason": reason, "message": message}, status_code=status_code)
