"""The sandbox's HTTP API: Cybersource's invoicing and webhook-setup endpoints, each checking
the HTTP Signature, plus unsigned ``/sandbox`` endpoints to drive invoices through their
lifecycle (each change sends the webhook Cybersource would), to inject 429/502 answers on
demand, and to read the delivery log."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.reconciler.http_signature import MerchantCredentials, SignatureMismatch, verify_request
from service.sandbox.deliveries import WebhookDeliveries
from service.sandbox.invoices import ActionNotAllowed, SandboxInvoice

DATE_SKEW_SECONDS_MAX = 15 * 60
LIST_LIMIT_MAX = 1000


@dataclass
class SandboxState:
    merchants: dict[str, MerchantCredentials]
    invoices: dict[str, SandboxInvoice] = field(default_factory=dict)
    faults: deque[int] = field(default_factory=deque)
    webhook_keys: dict[str, str] = field(default_factory=dict)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    signed_requests: int = 0


def _error(status_code: int, reason: str, message: str) -> JSONResponse:
    status = {400: "BADREQUEST", 401: "UNAUTHORIZED", 404: "NOTFOUND"}.get(
        status_code, "SERVER_ERROR"
    )
    return JSONResponse(
        {"status": status, "reason": reason, "message": message}, status_code=status_code
    )


Handler = Callable[[Request, bytes], Awaitable[Response]]


def create_sandbox_app(
    merchants: Sequence[MerchantCredentials],
    *,
    deliveries: WebhookDeliveries | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """``deliveries``: where and how to send webhooks for lifecycle changes (none: silent)."""
    state = SandboxState({credentials.key_id: credentials for credentials in merchants})

    def signed(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            try:
                verify_request(
                    state.merchants,
                    method=request.method,
                    path_and_query=target,
                    headers=request.headers,
                    body=body,
                )
                _check_date(request.headers.get("date", ""), clock())
            except SignatureMismatch as mismatch:
                return _error(401, "AUTHENTICATION_FAILED", str(mismatch))
            state.signed_requests += 1
            if state.faults:
                status_code = state.faults.popleft()
                reason = "TOO_MANY_REQUESTS" if status_code == 429 else "SYSTEM_ERROR"
                return _error(status_code, reason, "injected fault")
            return await handler(request, body)

        return endpoint

    async def get_invoice(request: Request, body: bytes) -> Response:
        invoice = state.invoices.get(request.path_params["id"])
        if invoice is None:
            return _error(404, "NOTFOUND", "the invoice does not exist")
        return JSONResponse(invoice.details())

    async def list_invoices(request: Request, body: bytes) -> Response:
        try:
            offset = int(request.query_params["offset"])
            limit = int(request.query_params["limit"])
        except (KeyError, ValueError):
            return _error(400, "VALIDATION_ERRORS", "offset and limit are required integers")
        if offset < 0 or not 0 < limit <= LIST_LIMIT_MAX:
            return _error(400, "VALIDATION_ERRORS", "offset or limit out of range")
        status = request.query_params.get("status")
        # Newest first, as Cybersource's examples list them.
        matching = [i for i in reversed(state.invoices.values()) if status in (None, i.status)]
        page = matching[offset : offset + limit]
        links: dict[str, Any] = {
            "self": {"href": f"/v2/invoices/?offset={offset}&limit={limit}", "method": "GET"}
        }
        if offset + limit < len(matching):
            links["next"] = {
                "href": f"/v2/invoices/?offset={offset + limit}&limit={limit}",
                "method": "GET",
            }
        return JSONResponse(
            {
                "_links": links,
                "totalInvoices": len(matching),
                "invoices": [invoice.summary() for invoice in page],
            }
        )

    async def create_webhook_key(request: Request, body: bytes) -> Response:
        key_id, key = str(uuid.uuid4()), base64.b64encode(secrets.token_bytes(32)).decode()
        state.webhook_keys[key_id] = key
        return JSONResponse(
            {
                "status": "SUCCESS",
                "keyInformation": {
                    "provider": "NRTD",
                    "keyId": key_id,
                    "key": key,
                    "keyType": "sharedSecret",
                    "status": "Active",
                },
            }
        )

    async def create_subscription(request: Request, body: bytes) -> Response:
        document = await request.json()
        subscription = {
            **document,
            "webhookId": str(uuid.uuid4()),
            "status": "INACTIVE",
            "version": "3",
        }
        state.subscriptions.append(subscription)
        return JSONResponse(subscription, status_code=201)

    async def create_invoice(request: Request) -> Response:
        document = await request.json()
        try:
            invoice = SandboxInvoice(
                invoice_number=str(document.get("invoiceNumber") or len(state.invoices) + 1),
                total_amount=Decimal(str(document["totalAmount"])),
                currency=str(document.get("currency", "USD")),
                due_date=date.fromisoformat(document["dueDate"]),
                customer_name=document.get("customerName"),
                customer_email=document.get("customerEmail"),
                allow_partial_payments=bool(document.get("allowPartialPayments", False)),
                minimum_partial_amount=_optional_decimal(document.get("minimumPartialAmount")),
            )
        except (KeyError, ValueError, InvalidOperation) as error:
            return _error(400, "VALIDATION_ERRORS", f"invalid invoice: {error}")
        if invoice.invoice_number in state.invoices:
            return _error(400, "DUPLICATE_RECORD", "the invoice number exists")
        status = document.get("status", "DRAFT")
        if status not in ("DRAFT", "CREATED", "SENT"):
            return _error(400, "VALIDATION_ERRORS", "status must be DRAFT, CREATED or SENT")
        invoice.record("DRAFT")
        state.invoices[invoice.invoice_number] = invoice
        if status == "CREATED":
            invoice.publish()
        elif status == "SENT":
            invoice.send()
            if deliveries is not None:
                deliveries.notify("invoicing.customer.invoice.send", invoice)
        return JSONResponse(invoice.details(), status_code=201)

    async def invoice_action(request: Request) -> Response:
        invoice = state.invoices.get(request.path_params["id"])
        if invoice is None:
            return _error(404, "NOTFOUND", "the invoice does not exist")
        action = request.path_params["action"]
        was_partial = invoice.status == "PARTIAL"
        try:
            if action == "publish":
                invoice.publish()
                event_type = None  # Cybersource has no webhook for CREATED
            elif action == "send":
                invoice.send()
                event_type = "partial-resend" if was_partial else "send"
            elif action == "cancel":
                invoice.cancel()
                event_type = "cancel"
            elif action in ("pay", "pending"):
                document = await request.json()
                amount = Decimal(str(document["amount"]))
                transaction_id = str(document.get("transactionId") or uuid.uuid4().hex)
                if action == "pending":
                    invoice.start_payment_under_review(amount, transaction_id)
                    event_type = None  # no webhook for PENDING
                else:
                    invoice.pay(amount, transaction_id)
                    event_type = "paid" if invoice.status == "PAID" else "partial-payment"
            elif action == "accept":
                invoice.accept_pending_payment()
                event_type = "paid" if invoice.status == "PAID" else "partial-payment"
            elif action == "reject":
                invoice.reject_pending_payment()
                event_type = None  # no webhook for a rejection either
            elif action == "update":
                document = await request.json()
                total = document.get("totalAmount")
                due = document.get("dueDate")
                invoice.update(
                    Decimal(str(total)) if total is not None else None,
                    date.fromisoformat(due) if due else None,
                )
                event_type = None
            else:
                return _error(404, "NOTFOUND", f"no action {action!r}")
        except ActionNotAllowed as refused:
            return _error(400, "ACTION_NOT_ALLOWED", str(refused))
        except (KeyError, ValueError, InvalidOperation) as error:
            return _error(400, "VALIDATION_ERRORS", f"invalid {action} request: {error}")
        if deliveries is not None and event_type is not None:
            deliveries.notify(f"invoicing.customer.invoice.{event_type}", invoice)
        return JSONResponse(invoice.details())

    async def delivery_log(request: Request) -> Response:
        if deliveries is None:
            return JSONResponse({"configured": False})
        return JSONResponse({"configured": True, **vars(deliveries.log)})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if deliveries is not None:
                await deliveries.close()

    async def inject_faults(request: Request) -> Response:
        statuses = (await request.json()).get("statuses", [])
        state.faults.extend(int(status) for status in statuses)
        return JSONResponse({"pending": list(state.faults)})

    app = Starlette(
        routes=[
            Route("/invoicing/v2/invoices/{id}", signed(get_invoice), methods=["GET"]),
            Route("/invoicing/v2/invoices", signed(list_invoices), methods=["GET"]),
            Route("/kms/egress/v2/keys-sym", signed(create_webhook_key), methods=["POST"]),
            Route(
                "/notification-subscriptions/v2/webhooks",
                signed(create_subscription),
                methods=["POST"],
            ),
            Route("/sandbox/invoices", create_invoice, methods=["POST"]),
            Route("/sandbox/invoices/{id}/{action}", invoice_action, methods=["POST"]),
            Route("/sandbox/faults", inject_faults, methods=["POST"]),
            Route("/sandbox/deliveries", delivery_log, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app


def _check_date(value: str, now: float) -> None:
    try:
        sent = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise SignatureMismatch("Date header missing or malformed") from None
    if abs(now - sent) > DATE_SKEW_SECONDS_MAX:
        raise SignatureMismatch("Date header too far from the server's clock")


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
