"""What customers and Cybersource do by themselves, as unsigned ``/sandbox`` endpoints: pay,
hold a payment for review, remind, send, cancel, update; plus injecting 429/502 answers into
the signed API and reading the webhook delivery log. ``?organizationId=`` names the
organization (default: the first served)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.sandbox.errors import FieldProblem, ValidationErrors
from service.sandbox.invoice_requests import parse_json_object, read_invoice_request
from service.sandbox.server import SandboxServer


class SandboxEndpoints:
    def __init__(self, server: SandboxServer) -> None:
        self._server = server

    def routes(self) -> list[Route]:
        helper = "/sandbox/invoices/{id}"
        return [
            Route("/sandbox/invoices", self.create_invoice, methods=["POST"]),
            Route(f"{helper}/pay", self.pay, methods=["POST"]),
            Route(f"{helper}/pending", self.hold_payment, methods=["POST"]),
            Route(f"{helper}/accept", self.accept_payment, methods=["POST"]),
            Route(f"{helper}/reject", self.reject_payment, methods=["POST"]),
            Route(f"{helper}/remind", self.remind, methods=["POST"]),
            Route(f"{helper}/publish", self.publish, methods=["POST"]),
            Route(f"{helper}/send", self.send, methods=["POST"]),
            Route(f"{helper}/cancel", self.cancel, methods=["POST"]),
            Route(f"{helper}/update", self.update, methods=["POST"]),
            Route("/sandbox/faults", self.inject_faults, methods=["POST"]),
            Route("/sandbox/deliveries", self.delivery_log, methods=["GET"]),
        ]

    async def create_invoice(self, request: Request) -> Response:
        """A flat shortcut: ``invoiceNumber``, ``totalAmount``, ``currency``, ``dueDate``,
        ``customerName``, ``customerEmail``, ``allowPartialPayments``,
        ``minimumPartialAmount``, and ``status`` DRAFT, CREATED or SENT."""
        invoices = self._server.helper_invoices(request)
        flat = parse_json_object(await request.body())
        status = flat.get("status", "DRAFT")
        if status not in ("DRAFT", "CREATED", "SENT"):
            raise ValidationErrors(
                "status must be DRAFT, CREATED or SENT", (FieldProblem("status", "INVALID_DATA"),)
            )
        invoice_request = read_invoice_request(_documented_request(flat))
        now = self._server.now()
        invoice = invoices.draft(invoice_request.invoice_number, invoice_request.content, now)
        if status == "CREATED":
            invoice.publish(now)
        elif status == "SENT":
            self._server.announce(invoices, invoice, invoice.send(now))
        return self._server.details(invoice, status_code=201)

    async def pay(self, request: Request) -> Response:
        """Body ``{amount, transactionId?, transactionDetails?}``: a payment on the hosted
        page; ``transactionDetails`` (``amount``, ``transaction-id`` or ``none``) says what
        its PAYMENT history entry shows (default: the organization's option)."""
        invoices, invoice = self._server.helper_invoice(request)
        payment = self._server.payment(invoices, await request.body())
        entry = invoice.pay(payment, self._server.now())
        self._server.announce(invoices, invoice, entry)
        return self._server.details(invoice)

    async def hold_payment(self, request: Request) -> Response:
        """A payment that fraud management holds for review: PENDING, no webhook. The body
        is the one ``pay`` takes."""
        invoices, invoice = self._server.helper_invoice(request)
        invoice.hold_payment_for_review(
            self._server.payment(invoices, await request.body()), self._server.now()
        )
        return self._server.details(invoice)

    async def accept_payment(self, request: Request) -> Response:
        invoices, invoice = self._server.helper_invoice(request)
        self._server.announce(
            invoices, invoice, invoice.accept_payment_under_review(self._server.now())
        )
        return self._server.details(invoice)

    async def reject_payment(self, request: Request) -> Response:
        _, invoice = self._server.helper_invoice(request)
        invoice.reject_payment_under_review(self._server.now())
        return self._server.details(invoice)

    async def remind(self, request: Request) -> Response:
        """The reminder Cybersource e-mails before the due date, or after it when overdue."""
        invoices, invoice = self._server.helper_invoice(request)
        self._server.announce(invoices, invoice, invoice.remind(self._server.now()))
        return self._server.details(invoice)

    async def publish(self, request: Request) -> Response:
        _, invoice = self._server.helper_invoice(request)
        invoice.publish(self._server.now())
        return self._server.details(invoice)

    async def send(self, request: Request) -> Response:
        return self._server.send(self._server.helper_invoices(request), request.path_params["id"])

    async def cancel(self, request: Request) -> Response:
        return self._server.cancel(self._server.helper_invoices(request), request.path_params["id"])

    async def update(self, request: Request) -> Response:
        """Body ``{totalAmount?, dueDate?}``: the rest of the invoice stays."""
        _, invoice = self._server.helper_invoice(request)
        changes = parse_json_object(await request.body())
        try:
            total = changes.get("totalAmount")
            due = changes.get("dueDate")
            content = replace(
                invoice.content,
                total_amount=invoice.content.total_amount if total is None else Decimal(total),
                due_date=invoice.content.due_date if not due else date.fromisoformat(due),
            )
        except (ValueError, TypeError, InvalidOperation):
            raise ValidationErrors("totalAmount or dueDate is invalid") from None
        if content.total_amount <= 0:
            raise ValidationErrors("the total must be positive")
        invoice.update(content, self._server.now())
        return self._server.details(invoice)

    async def inject_faults(self, request: Request) -> Response:
        """Body ``{statuses: [429, 502, ...]}``: the next signed calls get these answers."""
        statuses = parse_json_object(await request.body()).get("statuses", [])
        self._server.faults.extend(int(status) for status in statuses)
        return JSONResponse({"pending": list(self._server.faults)})

    async def delivery_log(self, request: Request) -> Response:
        if self._server.deliveries is None:
            return JSONResponse({"configured": False})
        return JSONResponse({"configured": True, **self._server.deliveries.log.document()})


def _documented_request(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The shortcut's flat fields as a documented create request."""
    email = flat.get("customerEmail")
    return {
        "customerInformation": {"name": flat.get("customerName"), "email": email},
        "invoiceInformation": {
            "invoiceNumber": flat.get("invoiceNumber"),
            "description": flat.get("description", "Sandbox invoice"),
            "dueDate": flat.get("dueDate"),
            "deliveryMode": "email" if email else "none",
            "allowPartialPayments": flat.get("allowPartialPayments", False),
        },
        "orderInformation": {
            "amountDetails": {
                "totalAmount": flat.get("totalAmount"),
                "currency": flat.get("currency", "USD"),
                "minimumPartialAmount": flat.get("minimumPartialAmount"),
            }
        },
    }
