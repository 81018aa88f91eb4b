"""Cybersource's REST API as the sandbox serves it, each call signed (HTTP Signature) and
served to the organization its ``v-c-merchant-id`` header names: invoicing, the Transaction
Details API for its invoices' payments, and the webhook key and subscription set-up."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.domain.status import InvoiceStatus
from service.sandbox.documents import invoice_list, transaction_details
from service.sandbox.errors import AuthenticationFailed, FieldProblem, ValidationErrors
from service.sandbox.invoice_requests import parse_json_object, read_invoice_request
from service.sandbox.invoices import DeliveryMode, SandboxInvoice
from service.sandbox.server import EVENT_TYPES, ExactJSONResponse, InvoiceAction, SandboxServer

LIST_LIMIT_MAX = 1000
# A webhook signing key's lifetime when the request names none (Cybersource recommends 365).
KEY_LIFETIME_DAYS = 365


@dataclass(frozen=True)
class SignedEndpoints:
    """The signed endpoints: each verifies the HTTP Signature before it acts."""

    server: SandboxServer

    def routes(self) -> list[Route]:
        invoice = "/invoicing/v2/invoices/{id}"
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
                "/kms/egress/v2/keys-asym", self.store_notification_certificate, methods=["POST"]
            ),
            Route(
                "/notification-subscriptions/v2/products/{organizationId}",
                self.products,
                methods=["GET"],
            ),
            Route(
                "/notification-subscriptions/v2/webhooks",
                self.create_subscription,
                methods=["POST"],
            ),
        ]

    async def list_invoices(self, request: Request) -> Response:
        call = await self.server.signed(request)
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
                self.server.summaries.of(organization_id, invoice)
                for invoice in matching[offset : offset + limit]
            ],
            offset=offset,
            limit=limit,
            status=status,
            total=len(matching),
            now=self.server.now(),
        )
        return ExactJSONResponse(document)

    async def create_invoice(self, request: Request) -> Response:
        """The four creation methods: a draft (``sendImmediately`` false, either delivery
        mode), created without sending (true, ``none``), or created and sent (true,
        ``email``: a send webhook)."""
        call = await self.server.signed(request)
        invoice_request = read_invoice_request(parse_json_object(call.body))
        now = self.server.now()
        invoice = call.invoices.draft(invoice_request.invoice_number, invoice_request.content, now)
        if invoice_request.send_immediately:
            if invoice.content.delivery_mode is DeliveryMode.EMAIL:
                self.server.announce(call.invoices, invoice, invoice.send(now))
            else:
                invoice.publish(now)
        return self.server.details(invoice, status_code=201)

    async def get_invoice(self, request: Request) -> Response:
        call = await self.server.signed(request)
        return self.server.details(call.invoices.get(request.path_params["id"]))

    async def update_invoice(self, request: Request) -> Response:
        """Replace the invoice with the request's content: what it leaves out is removed."""
        call = await self.server.signed(request)
        invoice = call.invoices.get(request.path_params["id"])
        invoice_request = read_invoice_request(parse_json_object(call.body))
        if invoice_request.invoice_number not in (None, invoice.invoice_number):
            raise ValidationErrors(
                "the invoice number cannot change",
                (FieldProblem("invoiceInformation.invoiceNumber", "INVALID_DATA"),),
            )
        invoice.update(invoice_request.content, self.server.now())
        return self.server.details(invoice)

    async def publish_invoice(self, request: Request) -> Response:
        return await self._act(request, SandboxInvoice.publish)

    async def send_invoice(self, request: Request) -> Response:
        return await self._act(request, SandboxInvoice.send)

    async def cancel_invoice(self, request: Request) -> Response:
        return await self._act(request, SandboxInvoice.cancel)

    async def _act(self, request: Request, action: InvoiceAction) -> Response:
        call = await self.server.signed(request)
        return self.server.act(call.invoices, request.path_params["id"], action)

    async def get_transaction(self, request: Request) -> Response:
        """Get Transaction Details for a payment on one of the organization's invoices;
        another organization's transaction is not found."""
        call = await self.server.signed(request)
        transaction = call.invoices.transactions.get(request.path_params["id"])
        return ExactJSONResponse(transaction_details(transaction, call.invoices.organization_id))

    async def create_webhook_key(self, request: Request) -> Response:
        call = await self.server.signed(request)
        key_id, key = str(uuid.uuid4()), base64.b64encode(secrets.token_bytes(32)).decode()
        self.server.webhook_keys[key_id] = key
        asked = parse_json_object(call.body).get("keyInformation")
        days = str(asked.get("expiryDuration")) if isinstance(asked, dict) else ""
        lifetime = timedelta(days=int(days) if days.isdigit() else KEY_LIFETIME_DAYS)
        # The documented shape: 2022-03-17T06:53:06+0000.
        expires = (self.server.now() + lifetime).strftime("%Y-%m-%dT%H:%M:%S%z")
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

    async def store_notification_certificate(self, request: Request) -> Response:
        """Take the certificate the organization's notifications are to be encrypted for (the
        public certificate, base64 DER without the PEM armour, as Cybersource's samples send
        it); the event types the products answer marks ``payloadEncryption`` go out encrypted
        for it from now on."""
        call = await self.server.signed(request)
        information = parse_json_object(call.body).get("keyInformation")
        if not isinstance(information, dict) or information.get("keyType") != "publickey":
            raise ValidationErrors(
                "keyInformation.keyType must be publickey",
                (FieldProblem("keyInformation.keyType", "INVALID_DATA"),),
            )
        try:
            certificate = x509.load_der_x509_certificate(
                base64.b64decode(str(information.get("pub", "")), validate=True)
            )
        except (binascii.Error, ValueError):
            raise ValidationErrors(
                "keyInformation.pub is not a base64 DER certificate",
                (FieldProblem("keyInformation.pub", "INVALID_DATA"),),
            ) from None
        self.server.register_notification_certificate(
            call.invoices.organization_id,
            certificate.public_bytes(serialization.Encoding.PEM),
            self.server.encrypted_event_types,
        )
        return JSONResponse({"submitTimeUtc": _utc_text(self.server.now()), "status": "SUCCESS"})

    async def products(self, request: Request) -> Response:
        """The invoicing product and its event types, each saying whether Cybersource sends it
        encrypted (``payloadEncryption``, as the sandbox was told)."""
        call = await self.server.signed(request)
        if request.path_params["organizationId"] != call.invoices.organization_id:
            raise AuthenticationFailed("the key does not act for this organization")
        event_types = [
            {
                "eventName": event_type,
                "displayName": event_type.rpartition(".")[2].replace("-", " ").title(),
                "payloadEncryption": event_type in self.server.encrypted_event_types,
            }
            for event_type in EVENT_TYPES
        ]
        return JSONResponse(
            [
                {
                    "productId": "customerInvoicing",
                    "productName": "Invoicing",
                    "eventTypes": event_types,
                }
            ]
        )

    async def create_subscription(self, request: Request) -> Response:
        call = await self.server.signed(request)
        subscription = {
            **parse_json_object(call.body),
            "webhookId": str(uuid.uuid4()),
            "status": "INACTIVE",
            "version": "3",
        }
        self.server.subscriptions.append(subscription)
        return JSONResponse(subscription, status_code=201)


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
