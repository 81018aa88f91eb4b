"""The sandbox's HTTP API: Cybersource's invoicing and webhook-setup endpoints and the
Transaction Details API for its invoices' payments, each checking the HTTP Signature and serving
the organization its ``v-c-merchant-id`` header names, plus unsigned ``/sandbox`` endpoints for
what customers and Cybersource do on their own (pay, hold a payment for review, remind), to
inject 429/502 answers on demand, and to read the delivery log.

Every change that Cybersource announces by webhook (send, payment, cancel, reminder) sends it;
create, update, publish, pending and rejected send none, as Cybersource has none for them."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
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
from service.domain.status import InvoiceStatus
from service.sandbox import json_numbers
from service.sandbox.deliveries import WebhookDeliveries
from service.sandbox.documents import (
    invoice_details,
    invoice_list,
    refusal,
    transaction_details,
)
from service.sandbox.errors import (
    AuthenticationFailed,
    FieldProblem,
    InjectedFault,
    SandboxRefusal,
    ValidationErrors,
)
from service.sandbox.invoice_requests import parse_json_object, read_invoice_request
from service.sandbox.invoices import (
    DeliveryMode,
    HistoryEntry,
    HistoryEvent,
    Payment,
    SandboxInvoice,
    TransactionDetailsShown,
)
from service.sandbox.organizations import OrganizationInvoices, Organizations
from service.sandbox.written_summaries import WrittenSummaries

DATE_SKEW_SECONDS_MAX = 15 * 60
LIST_LIMIT_MAX = 1000
EVENT_TYPE_PREFIX = "invoicing.customer.invoice."
# A webhook signing key's lifetime when the request names none (Cybersource recommends 365).
KEY_LIFETIME_DAYS = 365


class ExactJSONResponse(JSONResponse):
    """JSON whose Decimal amounts are written as exact numbers."""

    def render(self, content: Any) -> bytes:
        return json_numbers.dumps(content).encode()


@dataclass(frozen=True)
class SandboxOptions:
    """``transaction_details_on_review``: PENDING and REJECTED history entries carry
    ``transactionDetails`` (Cybersource may include them; consumers must cope either way).

    ``payment_transaction_details``: what PAYMENT history entries show of their transaction
    (id and amount, the id only, or nothing), for every organization but those named in
    ``payment_transaction_details_by_organization``; a payment request's own
    ``transactionDetails`` field decides for that payment."""

    transaction_details_on_review: bool = False
    payment_transaction_details: TransactionDetailsShown = TransactionDetailsShown.AMOUNT
    payment_transaction_details_by_organization: Mapping[str, TransactionDetailsShown] = field(
        default_factory=dict
    )

    def payment_details_for(self, organization_id: str) -> TransactionDetailsShown:
        return self.payment_transaction_details_by_organization.get(
            organization_id, self.payment_transaction_details
        )


@dataclass(frozen=True)
class SignedCall:
    """A request whose signature verified: the organization's invoices and the body."""

    invoices: OrganizationInvoices
    body: bytes


class CybersourceSandbox:
    def __init__(
        self,
        merchants: Sequence[MerchantCredentials],
        *,
        organization_ids: Iterable[str] = (),
        deliveries: WebhookDeliveries | None = None,
        clock: Callable[[], float] = time.time,
        options: SandboxOptions = SandboxOptions(),
    ) -> None:
        """``organization_ids``: the organizations served (default: those the keys act for,
        else their owners); the first is the ``/sandbox`` helpers' default. ``deliveries``:
        where and how to send webhooks (none: silent)."""
        self._merchants = {credentials.key_id: credentials for credentials in merchants}
        self.organizations = Organizations(tuple(organization_ids) or _organizations_of(merchants))
        self._deliveries = deliveries
        self._clock = clock
        self._options = options
        self._faults: deque[int] = deque()
        self._summaries = WrittenSummaries()
        self.webhook_keys: dict[str, str] = {}
        self.subscriptions: list[dict[str, Any]] = []

    def routes(self) -> list[Route]:
        invoice = "/invoicing/v2/invoices/{id}"
        helper = "/sandbox/invoices/{id}"
        return [
            Route("/invoicing/v2/invoices", self.list_invoices, methods=["GET"]),
            Route("/invoicing/v2/invoices", self.create_invoice, methods=["POST"]),
            Route(invoice, self.get_invoice, methods=["GET"]),
            Route(invoice, self.update_invoice, methods=["PUT"]),
            Route(f"{invoice}/publication", self.publish_invoice, methods=["POST"]),
            Route(f"{invoice}/delivery", self.send_invoice, methods=["POST"]),
            Route(f"{invoice}/cancelation", self.cancel_invoice, methods=["POST"]),
            Route("/tss/v2/transactions/{id}", self.get_transaction, methods=["GET"]),
            Route("/kms/egress/v2/keys-sym", self.create_webhook_key, methods=["POST"]),
            Route(
                "/notification-subscriptions/v2/webhooks",
                self.create_subscription,
                methods=["POST"],
            ),
            Route("/sandbox/invoices", self.sandbox_create_invoice, methods=["POST"]),
            Route(f"{helper}/pay", self.sandbox_pay, methods=["POST"]),
            Route(f"{helper}/pending", self.sandbox_hold_payment, methods=["POST"]),
            Route(f"{helper}/accept", self.sandbox_accept_payment, methods=["POST"]),
            Route(f"{helper}/reject", self.sandbox_reject_payment, methods=["POST"]),
            Route(f"{helper}/remind", self.sandbox_remind, methods=["POST"]),
            Route(f"{helper}/publish", self.sandbox_publish, methods=["POST"]),
            Route(f"{helper}/send", self.sandbox_send, methods=["POST"]),
            Route(f"{helper}/cancel", self.sandbox_cancel, methods=["POST"]),
            Route(f"{helper}/update", self.sandbox_update, methods=["POST"]),
            Route("/sandbox/faults", self.inject_faults, methods=["POST"]),
            Route("/sandbox/deliveries", self.delivery_log, methods=["GET"]),
        ]

    def app(self) -> Starlette:
        app = Starlette(
            routes=self.routes(),
            exception_handlers={SandboxRefusal: self._refused},
            lifespan=self._lifespan,
        )
        app.state.sandbox = self
        return app

    # Cybersource's REST API, signed.

    async def list_invoices(self, request: Request) -> Response:
        call = await self._signed(request)
        offset, limit = _paging(request.query_params)
        status = request.query_params.get("status")
        if status is not None and status not in InvoiceStatus.__members__:
            raise ValidationErrors(
                f"unknown status {status[:20]!r}", (FieldProblem("status", "INVALID_DATA"),)
            )
        matching = call.invoices.listed(InvoiceStatus(status) if status else None)
        organization_id = call.invoices.organization_id
        document = invoice_list(
            [
                self._summaries.of(organization_id, invoice)
                for invoice in matching[offset : offset + limit]
            ],
            offset=offset,
            limit=limit,
            status=status,
            total=len(matching),
            now=self._now(),
        )
        return ExactJSONResponse(document)

    async def create_invoice(self, request: Request) -> Response:
        """The four creation methods: a draft (``sendImmediately`` false, either delivery
        mode), created without sending (true, ``none``), or created and sent (true,
        ``email``: a send webhook)."""
        call = await self._signed(request)
        invoice_request = read_invoice_request(parse_json_object(call.body))
        now = self._now()
        invoice = call.invoices.draft(invoice_request.invoice_number, invoice_request.content, now)
        if invoice_request.send_immediately:
            if invoice.content.delivery_mode is DeliveryMode.EMAIL:
                self._announce(call.invoices, invoice, invoice.send(now))
            else:
                invoice.publish(now)
        return self._details(invoice, status_code=201)

    async def get_invoice(self, request: Request) -> Response:
        call = await self._signed(request)
        return self._details(call.invoices.get(request.path_params["id"]))

    async def update_invoice(self, request: Request) -> Response:
        """Replace the invoice with the request's content: what it leaves out is removed."""
        call = await self._signed(request)
        invoice = call.invoices.get(request.path_params["id"])
        invoice_request = read_invoice_request(parse_json_object(call.body))
        if invoice_request.invoice_number not in (None, invoice.invoice_number):
            raise ValidationErrors(
                "the invoice number cannot change",
                (FieldProblem("invoiceInformation.invoiceNumber", "INVALID_DATA"),),
            )
        invoice.update(invoice_request.content, self._now())
        return self._details(invoice)

    async def publish_invoice(self, request: Request) -> Response:
        call = await self._signed(request)
        invoice = call.invoices.get(request.path_params["id"])
        invoice.publish(self._now())
        return self._details(invoice)

    async def send_invoice(self, request: Request) -> Response:
        call = await self._signed(request)
        return self._send(call.invoices, request.path_params["id"])

    async def cancel_invoice(self, request: Request) -> Response:
        call = await self._signed(request)
        return self._cancel(call.invoices, request.path_params["id"])

    async def get_transaction(self, request: Request) -> Response:
        """Get Transaction Details for a payment on one of the organization's invoices;
        another organization's transaction is not found."""
        call = await self._signed(request)
        transaction = call.invoices.transactions.get(request.path_params["id"])
        return ExactJSONResponse(transaction_details(transaction, call.invoices.organization_id))

    async def create_webhook_key(self, request: Request) -> Response:
        call = await self._signed(request)
        key_id, key = str(uuid.uuid4()), base64.b64encode(secrets.token_bytes(32)).decode()
        self.webhook_keys[key_id] = key
        asked = parse_json_object(call.body).get("keyInformation")
        days = str(asked.get("expiryDuration")) if isinstance(asked, dict) else ""
        lifetime = timedelta(days=int(days) if days.isdigit() else KEY_LIFETIME_DAYS)
        # The documented shape: 2022-03-17T06:53:06+0000.
        expires = (self._now() + lifetime).strftime("%Y-%m-%dT%H:%M:%S%z")
        return JSONResponse(
            {
                "status": "SUCCESS",
                "keyInformation": {
                    "provider": "NRTD",
                    "keyId": key_id,
                    "key": key,
                    "keyType": "sharedSecret",
                    "status": "Active",
                    "expirationDate": expires,
                },
            }
        )

    async def create_subscription(self, request: Request) -> Response:
        call = await self._signed(request)
        subscription = {
            **parse_json_object(call.body),
            "webhookId": str(uuid.uuid4()),
            "status": "INACTIVE",
            "version": "3",
        }
        self.subscriptions.append(subscription)
        return JSONResponse(subscription, status_code=201)

    # What customers and Cybersource do by themselves, unsigned. ``?organizationId=`` names
    # the organization (default: the first served).

    async def sandbox_create_invoice(self, request: Request) -> Response:
        """A flat shortcut: ``invoiceNumber``, ``totalAmount``, ``currency``, ``dueDate``,
        ``customerName``, ``customerEmail``, ``allowPartialPayments``,
        ``minimumPartialAmount``, and ``status`` DRAFT, CREATED or SENT."""
        invoices = self._helper_invoices(request)
        flat = parse_json_object(await request.body())
        status = flat.get("status", "DRAFT")
        if status not in ("DRAFT", "CREATED", "SENT"):
            raise ValidationErrors(
                "status must be DRAFT, CREATED or SENT", (FieldProblem("status", "INVALID_DATA"),)
            )
        invoice_request = read_invoice_request(_documented_request(flat))
        now = self._now()
        invoice = invoices.draft(invoice_request.invoice_number, invoice_request.content, now)
        if status == "CREATED":
            invoice.publish(now)
        elif status == "SENT":
            self._announce(invoices, invoice, invoice.send(now))
        return self._details(invoice, status_code=201)

    async def sandbox_pay(self, request: Request) -> Response:
        """Body ``{amount, transactionId?, transactionDetails?}``: a payment on the hosted
        page; ``transactionDetails`` (``amount``, ``transaction-id`` or ``none``) says what
        its PAYMENT history entry shows (default: the organization's option)."""
        invoices, invoice = self._helper_invoice(request)
        payment = self._payment(invoices, await request.body())
        entry = invoice.pay(payment, self._now())
        self._announce(invoices, invoice, entry)
        return self._details(invoice)

    async def sandbox_hold_payment(self, request: Request) -> Response:
        """A payment that fraud management holds for review: PENDING, no webhook. The body
        is the one ``pay`` takes."""
        invoices, invoice = self._helper_invoice(request)
        invoice.hold_payment_for_review(self._payment(invoices, await request.body()), self._now())
        return self._details(invoice)

    async def sandbox_accept_payment(self, request: Request) -> Response:
        invoices, invoice = self._helper_invoice(request)
        self._announce(invoices, invoice, invoice.accept_payment_under_review(self._now()))
        return self._details(invoice)

    async def sandbox_reject_payment(self, request: Request) -> Response:
        _, invoice = self._helper_invoice(request)
        invoice.reject_payment_under_review(self._now())
        return self._details(invoice)

    async def sandbox_remind(self, request: Request) -> Response:
        """The reminder Cybersource e-mails before the due date, or after it when overdue."""
        invoices, invoice = self._helper_invoice(request)
        self._announce(invoices, invoice, invoice.remind(self._now()))
        return self._details(invoice)

    async def sandbox_publish(self, request: Request) -> Response:
        _, invoice = self._helper_invoice(request)
        invoice.publish(self._now())
        return self._details(invoice)

    async def sandbox_send(self, request: Request) -> Response:
        return self._send(self._helper_invoices(request), request.path_params["id"])

    async def sandbox_cancel(self, request: Request) -> Response:
        return self._cancel(self._helper_invoices(request), request.path_params["id"])

    async def sandbox_update(self, request: Request) -> Response:
        """Body ``{totalAmount?, dueDate?}``: the rest of the invoice stays."""
        _, invoice = self._helper_invoice(request)
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
        invoice.update(content, self._now())
        return self._details(invoice)

    async def inject_faults(self, request: Request) -> Response:
        """Body ``{statuses: [429, 502, ...]}``: the next signed calls get these answers."""
        statuses = parse_json_object(await request.body()).get("statuses", [])
        self._faults.extend(int(status) for status in statuses)
        return JSONResponse({"pending": list(self._faults)})

    async def delivery_log(self, request: Request) -> Response:
        if self._deliveries is None:
            return JSONResponse({"configured": False})
        return JSONResponse({"configured": True, **self._deliveries.log.document()})

    # Shared steps.

    def _send(self, invoices: OrganizationInvoices, invoice_number: str) -> Response:
        invoice = invoices.get(invoice_number)
        self._announce(invoices, invoice, invoice.send(self._now()))
        return self._details(invoice)

    def _cancel(self, invoices: OrganizationInvoices, invoice_number: str) -> Response:
        invoice = invoices.get(invoice_number)
        self._announce(invoices, invoice, invoice.cancel(self._now()))
        return self._details(invoice)

    def _announce(
        self, invoices: OrganizationInvoices, invoice: SandboxInvoice, entry: HistoryEntry
    ) -> None:
        """Send the webhook Cybersource sends for this history entry, if any."""
        event_type = _event_type(invoice, entry)
        if self._deliveries is not None and event_type is not None:
            self._deliveries.notify(
                EVENT_TYPE_PREFIX + event_type, invoices.organization_id, invoice, entry
            )

    def _details(self, invoice: SandboxInvoice, status_code: int = 200) -> Response:
        document = invoice_details(
            invoice,
            self._now(),
            transaction_details_on_review=self._options.transaction_details_on_review,
        )
        return ExactJSONResponse(document, status_code=status_code)

    async def _signed(self, request: Request) -> SignedCall:
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            verify_request(
                self._merchants,
                method=request.method,
                path_and_query=target,
                headers=request.headers,
                body=body,
            )
            _check_date(request.headers.get("date", ""), self._clock())
        except SignatureMismatch as mismatch:
            raise AuthenticationFailed(str(mismatch)) from None
        if self._faults:
            raise InjectedFault(self._faults.popleft())
        return SignedCall(self.organizations.invoices_of(request.headers["v-c-merchant-id"]), body)

    def _payment(self, invoices: OrganizationInvoices, body: bytes) -> Payment:
        return _payment(body, self._options.payment_details_for(invoices.organization_id))

    def _helper_invoices(self, request: Request) -> OrganizationInvoices:
        return self.organizations.invoices_of(request.query_params.get("organizationId"))

    def _helper_invoice(self, request: Request) -> tuple[OrganizationInvoices, SandboxInvoice]:
        invoices = self._helper_invoices(request)
        return invoices, invoices.get(request.path_params["id"])

    def _now(self) -> datetime:
        # Milliseconds, as the history writes dates: what it shows is what webhooks are
        # dated against.
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    async def _refused(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, SandboxRefusal)
        return ExactJSONResponse(refusal(error, self._now()), status_code=error.status_code)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._deliveries is not None:
                await self._deliveries.close()


def create_sandbox_app(
    merchants: Sequence[MerchantCredentials],
    *,
    organization_ids: Iterable[str] = (),
    deliveries: WebhookDeliveries | None = None,
    clock: Callable[[], float] = time.time,
    options: SandboxOptions = SandboxOptions(),
) -> Starlette:
    """A local Cybersource for these keys; see ``CybersourceSandbox``."""
    sandbox = CybersourceSandbox(
        merchants,
        organization_ids=organization_ids,
        deliveries=deliveries,
        clock=clock,
        options=options,
    )
    return sandbox.app()


def _organizations_of(merchants: Sequence[MerchantCredentials]) -> tuple[str, ...]:
    organizations: dict[str, None] = {}
    for credentials in merchants:
        for organization in credentials.organization_ids or (credentials.merchant_id,):
            organizations[organization] = None
    return tuple(organizations)


def _event_type(invoice: SandboxInvoice, entry: HistoryEntry) -> str | None:
    match entry.event:
        case HistoryEvent.SEND | HistoryEvent.RESEND:
            return "send"
        case HistoryEvent.CANCEL:
            return "cancel"
        case HistoryEvent.PAYMENT:
            return "paid" if invoice.status is InvoiceStatus.PAID else "partial-payment"
        case HistoryEvent.REMINDER:
            overdue = invoice.content.due_date < entry.date.date()
            return "overdue-reminder" if overdue else "reminder"
        case _:
            return None  # Cybersource has no webhook for drafts, updates, publishing, reviews


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        offset, limit = int(query["offset"]), int(query["limit"])
    except KeyError as missing:
        field = str(missing.args[0])
        problem = FieldProblem(field, "MISSING_FIELD")
        raise ValidationErrors(f"{field} is required", (problem,)) from None
    except ValueError:
        raise ValidationErrors("offset and limit must be integers") from None
    if offset < 0:
        raise ValidationErrors("offset is negative", (FieldProblem("offset", "INVALID_DATA"),))
    if not 0 < limit <= LIST_LIMIT_MAX:
        raise ValidationErrors(
            f"limit must be 1 to {LIST_LIMIT_MAX}", (FieldProblem("limit", "INVALID_DATA"),)
        )
    return offset, limit


def _payment(body: bytes, shown_by_default: TransactionDetailsShown) -> Payment:
    document = parse_json_object(body)
    try:
        amount = Decimal(str(document["amount"]))
    except (KeyError, InvalidOperation):
        raise ValidationErrors(
            "amount is required", (FieldProblem("amount", "MISSING_FIELD"),)
        ) from None
    try:
        shown = TransactionDetailsShown(document.get("transactionDetails") or shown_by_default)
    except ValueError:
        raise ValidationErrors(
            f"transactionDetails must be one of {', '.join(TransactionDetailsShown)}",
            (FieldProblem("transactionDetails", "INVALID_DATA"),),
        ) from None
    transaction_id = str(document.get("transactionId") or uuid.uuid4().hex)
    return Payment(amount, transaction_id, shown)


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


def _check_date(value: str, now: float) -> None:
    try:
        sent = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise SignatureMismatch("Date header missing or malformed") from None
    if abs(now - sent) > DATE_SKEW_SECONDS_MAX:
        raise SignatureMismatch("Date header too far from the server's clock")
