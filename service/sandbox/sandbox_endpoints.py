"""What customers and Cybersource do by themselves, as unsigned ``/sandbox`` endpoints: pay,
hold a payment for review, remind, send, cancel, update; plus injecting 429/502 answers into
the signed API and reading the webhook delivery log. ``?organizationId=`` names the
organization (default: the first served)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.sandbox.errors import FieldProblem, ValidationErrors
from service.sandbox.invoice_requests import parse_json_object, read_invoice_request
from service.sandbox.invoices import SandboxInvoice
from service.sandbox.server import InvoiceAction, SandboxServer

# Body-less actions on one invoice, by the last part of their path.
ACTIONS: dict[str, InvoiceAction] = {
    "accept": SandboxInvoice.accept_payment_under_review,
    "reject": SandboxInvoice.reject_payment_under_review,
    # The reminder Cybersource e-mails before the due date, or after it when overdue.
    "remind": SandboxInvoice.remind,
    "publish": SandboxInvoice.publish,
    "send": SandboxInvoice.send,
    "cancel": SandboxInvoice.cancel,
}


@dataclass(frozen=True)
class SandboxEndpoints:
    """The unsigned ``/sandbox`` endpoints: anyone who can reach the sandbox may call them."""

    server: SandboxServer

    def routes(self) -> list[Route]:
        helper = "/sandbox/invoices/{id}"
        return [
            Route("/sandbox/invoices", self.create_invoice, methods=["POST"]),
            Route(f"{helper}/pay", self.pay, methods=["POST"]),
            Route(f"{helper}/pending", self.hold_payment, methods=["POST"]),
            *(
                Route(f"{helper}/{name}", self._acting(action), methods=["POST"])
                for name, action in ACTIONS.items()
            ),
            Route(f"{helper}/update", self.update, methods=["POST"]),
            Route("/sandbox/faults", self.inject_faults, methods=["POST"]),
            Route("/sandbox/deliveries", self.delivery_log, methods=["GET"]),
        ]

    async def create_invoice(self, request: Request) -> Response:
        """A flat shortcut: ``invoiceNumber``, ``totalAmount``, ``currency``, ``dueDate``,
        ``customerName``, ``customerEmail``, ``allowPartialPayments``,
        ``minimumPartialAmount``, and ``status`` DRAFT, CREATED or SENT."""
        invoices = self.server.helper_invoices(request)
        flat = parse_json_object(await request.body())
        status = flat.get("status", "DRAFT")
        if status not in ("DRAFT", "CREATED", "SENT"):
            raise ValidationErrors(
                "status must be DRAFT, CREATED or SENT", (FieldProblem("status", "INVALID_DATA"),)
            )
        invoice_request = read_invoice_request(_documented_request(flat))
        now = self.server.now()
        invoice = invoices.draft(invoice_request.invoice_number, invoice_request.content, now)
        if status == "CREATED":
            invoice.publish(now)
        elif status == "SENT":
            self.server.announce(invoices, invoice, invoice.send(now))
        return self.server.details(invoice, status_code=201)

    async def pay(self, request: Request) -> Response:
        """Body ``{amount, transactionId?, transactionDetails?}``: a payment on the hosted
        page; ``transactionDetails`` (``amount``, ``transaction-id`` or ``none``) says what
        its PAYMENT history entry shows (default: the organization's option)."""
        invoices, invoice = self.server.helper_invoice(request)
        payment = self.server.payment(invoices, await request.body())
        entry = invoice.pay(payment, self.server.now())
        self.server.announce(invoices, invoice, entry)
        return self.server.details(invoice)

    async def hold_payment(self, request: Request) -> Response:
        """A payment that fraud management holds for review: PENDING, no webhook. The body
        is the one ``pay`` takes."""
        invoices, invoice = self.server.helper_invoice(request)
        invoice.hold_payment_for_review(
            self.server.payment(invoices, await request.body()), self.server.now()
        )
        return self.server.details(invoice)

    async def update(self, request: Request) -> Response:
        """Body ``{totalAmount?, dueDate?}``: the rest of the invoice stays."""
        _, invoice = self.server.helper_invoice(request)
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
        invoice.update(content, self.server.now())
        return self.server.details(invoice)

    def _acting(self, action: InvoiceAction) -> Callable[[Request], Awaitable[Response]]:
        async def act(request: Request) -> Response:
            invoices = self.server.helper_invoices(request)
            return self.server.act(invoices, request.path_params["id"], action)

        return act

    async def inject_faults(self, request: Request) -> Response:
        """Body ``{statuses: [429, 502, ...]}``: the next signed calls get these answers."""
        statuses = parse_json_object(await request.body()).get("statuses", [])
        self.server.faults.extend(int(status) for status in statuses)
        return JSONResponse({"pending": list(self.server.faults)})

    async def delivery_log(self, request: Request) -> Response:
        if self.server.deliveries is None:
            return JSONResponse({"configured": False})
        return JSONResponse({"configured": True, **self.server.deliveries.log.document()})


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
