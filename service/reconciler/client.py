"""Cybersource's REST API, as the reconciler and the subscribe command use it: Get Invoice
Details, Get List of Invoices (page by page), Get Transaction Details, and what the subscribe
command sets up: the webhook key, the certificate notifications are encrypted for, the event
types on offer (and which arrive encrypted), and the subscription.

Every call goes through a ``SignedTransport`` (signed, bounded in time, rate and concurrency,
retried only when retrying can help; see ``transport.py``), and its answer is read before it
counts as answered: Get Transaction Details is checked against its model, and an answer that
does not fit is a failed call whose error names the field (see ``answers.py``).
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

from service.cybersource.credentials import RequestCredentials
from service.cybersource.transaction_details import TransactionDetails, read_transaction_details
from service.reconciler.answers import ARRAY_ITEMS, CallFailure, CallObserver, CybersourceError
from service.reconciler.transport import ClientLimits, SignedTransport

LIST_PAGE_SIZE_MAX = 100
LIST_PAGES_MAX = 100_000  # a bound on any sweep: ten million invoices
DEFAULT_LIMITS = ClientLimits()
INVOICING_PRODUCT = "customerInvoicing"


class CybersourceClient:
    """Calls as one merchant, or as several: ``more_merchants`` each with their own
    credentials and limits. A call for an organization goes out as the merchant that acts for
    it (each at its own rate); a call naming none, or an organization no merchant acts for, as
    the first merchant (Cybersource then refuses what its key may not do)."""

    def __init__(
        self,
        base_url: str,
        credentials: RequestCredentials,
        limits: ClientLimits = DEFAULT_LIMITS,
        *,
        observer: CallObserver | None = None,
        more_merchants: Sequence[tuple[RequestCredentials, ClientLimits]] = (),
    ) -> None:
        self._transport = SignedTransport(base_url, credentials, limits, observer)
        self._transports = [self._transport] + [
            SignedTransport(base_url, more, more_limits, observer)
            for more, more_limits in more_merchants
        ]
        # An organization a merchant lists is that merchant's, even where it is another
        # merchant's own id; otherwise a merchant acts for its own id (the first one wins).
        self._by_organization: dict[str, SignedTransport] = {}
        for transport in reversed(self._transports):
            self._by_organization[transport.credentials.merchant_id] = transport
        for transport in reversed(self._transports):
            for organization in transport.credentials.organization_ids:
                self._by_organization[organization] = transport

    @property
    def merchant_id(self) -> str:
        return self._transport.credentials.merchant_id

    @property
    def requests_sent(self) -> int:
        return sum(transport.requests_sent for transport in self._transports)

    def merchant_groups(self, organizations: Sequence[str]) -> list[tuple[str, ...]]:
        """``organizations`` grouped by the merchant that calls for them, in order: each
        group's calls share one rate limit, and the groups' limits add up."""
        groups: dict[int, list[str]] = {}
        for organization in organizations:
            groups.setdefault(id(self._for(organization)), []).append(organization)
        return [tuple(group) for group in groups.values()]

    def _for(self, organization_id: str | None) -> SignedTransport:
        if organization_id is None:
            return self._transport
        return self._by_organization.get(organization_id, self._transport)

    async def __aenter__(self) -> CybersourceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        for transport in self._transports:
            await transport.close()

    async def get_invoice(
        self, invoice_number: str, organization_id: str | None = None
    ) -> dict[str, Any]:
        """Get Invoice Details, for ``organization_id`` (by default the key's own merchant)."""
        path = f"/invoicing/v2/invoices/{quote(invoice_number, safe='')}"
        return await self._for(organization_id).call(
            "Get Invoice Details", "GET", path, organization_id=organization_id, read=_as_sent
        )

    async def transaction_details(
        self, transaction_id: str, organization_id: str | None = None
    ) -> TransactionDetails:
        """Get Transaction Details (``GET /tss/v2/transactions/{id}``) of one payment
        transaction, read and checked. A transaction Cybersource does not know (or not for
        this organization) raises ``CybersourceNotFound`` at once, never retried; an answer
        that does not fit raises ``CybersourceError`` naming the field."""
        path = f"/tss/v2/transactions/{quote(transaction_id, safe='')}"
        return await self._for(organization_id).call(
            "Get Transaction Details", "GET", path,
            organization_id=organization_id,
            read=lambda document: read_transaction_details(document, transaction_id),
        )  # fmt: skip

    async def list_invoices(
        self,
        offset: int,
        limit: int,
        status: str | None = None,
        organization_id: str | None = None,
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"offset": offset, "limit": limit}
        if status:
            query["status"] = status
        return await self._for(organization_id).call(
            "Get List of Invoices", "GET", "/invoicing/v2/invoices", query,
            organization_id=organization_id, read=_as_sent,
        )  # fmt: skip

    async def iterate_invoices(
        self,
        status: str | None = None,
        page_size: int = LIST_PAGE_SIZE_MAX,
        organization_id: str | None = None,
    ) -> AsyncIterator[Any]:
        """Every invoice summary of one organization, page by page, until a short page or
        ``totalInvoices``."""
        async for page in self.iterate_invoice_pages(status, page_size, organization_id):
            for invoice in page:
                yield invoice

    async def iterate_invoice_pages(
        self,
        status: str | None = None,
        page_size: int = LIST_PAGE_SIZE_MAX,
        organization_id: str | None = None,
        *,
        pages_in_flight: int = 1,
    ) -> AsyncGenerator[list[Any], None]:
        """The pages of one organization's invoice summaries (items as Cybersource sent them,
        unvalidated), in order, until a short page or ``totalInvoices``.

        Once a page has said how many there are, up to ``pages_in_flight`` of the following
        pages are requested at once (still within the client's rate and concurrency): a list
        call's latency, not the rate limit, would otherwise set the pace of a sweep that
        fetches few details. Reading stops at the first short page, so a list that shrank
        meanwhile ends there, and one that grew is read on to its new end."""
        offset = 0
        in_flight: deque[asyncio.Task[tuple[list[Any], int | None]]] = deque()
        try:
            for _ in range(LIST_PAGES_MAX):
                if in_flight:
                    invoices, total = await in_flight.popleft()
                else:
                    invoices, total = await self._invoice_page(
                        offset, page_size, status, organization_id
                    )
                yield invoices
                offset += page_size
                if len(invoices) < page_size or (total is not None and offset >= total):
                    return
                if total is not None:
                    # Offsets already requested run ahead of ``offset`` by the pages in flight.
                    start = offset + page_size * len(in_flight)
                    while len(in_flight) < pages_in_flight - 1 and start < total:
                        in_flight.append(
                            asyncio.create_task(
                                self._invoice_page(start, page_size, status, organization_id)
                            )
                        )
                        start += page_size
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)
                for task in in_flight:
                    if not task.cancelled():
                        task.exception()  # retrieved: the pages are no longer wanted
        raise self._unreadable_list(f"more than {LIST_PAGES_MAX} pages", organization_id)

    async def _invoice_page(
        self, offset: int, limit: int, status: str | None, organization_id: str | None
    ) -> tuple[list[Any], int | None]:
        """One page's items and the total it announced (None if it announced none)."""
        page = await self.list_invoices(offset, limit, status, organization_id)
        invoices = page.get("invoices") or []
        if not isinstance(invoices, list):
            raise self._unreadable_list("invoices is not a list", organization_id)
        total = page.get("totalInvoices")
        valid_total = total if isinstance(total, int) and not isinstance(total, bool) else None
        return invoices, valid_total

    def _unreadable_list(self, reason: str, organization_id: str | None) -> CybersourceError:
        error = CybersourceError(
            "Get List of Invoices", None, reason, failure=CallFailure.INVALID_ANSWER
        )
        acting_for = organization_id or self._transport.credentials.merchant_id
        self._transport.report_failure(error, "GET", "/invoicing/v2/invoices", acting_for)
        return error

    async def create_webhook_key(
        self, organization_id: str, expiry_days: int = 365
    ) -> dict[str, Any]:
        body = {
            "clientRequestAction": "CREATE",
            "keyInformation": {
                "provider": "nrtd",
                "tenant": organization_id,
                "keyType": "sharedSecret",
                "organizationId": organization_id,
                "expiryDuration": str(expiry_days),
            },
        }
        return await self._for(organization_id).call(
            "Create Webhook Key", "POST", "/kms/egress/v2/keys-sym", body=body,
            organization_id=None, read=_as_sent,
        )  # fmt: skip

    async def store_notification_certificate(
        self, organization_id: str, certificate_der: bytes, expiry_days: int = 365
    ) -> dict[str, Any]:
        """Give Cybersource the public certificate it encrypts notifications for (message-level
        encryption); the request is the one Cybersource's own samples send."""
        body = {
            "clientRequestAction": "STORE",
            "keyInformation": {
                "provider": organization_id,
                "tenant": "nrtd",
                "keyType": "publickey",
                "organizationId": organization_id,
                "pub": base64.b64encode(certificate_der).decode(),
                "expiryDuration": str(expiry_days),
            },
        }
        return await self._for(organization_id).call(
            "Store Notification Certificate", "POST", "/kms/egress/v2/keys-asym", body=body,
            organization_id=organization_id, read=_as_sent,
        )  # fmt: skip

    async def encrypted_event_types(self, organization_id: str) -> dict[str, bool]:
        """Each invoicing event type the organization may subscribe to, and whether Cybersource
        sends it encrypted (``payloadEncryption``)."""
        return await self._for(organization_id).call(
            "Get Products", "GET",
            f"/notification-subscriptions/v2/products/{quote(organization_id, safe='')}",
            organization_id=organization_id, read=_payload_encryption,
        )  # fmt: skip

    async def create_webhook_subscription(
        self, organization_id: str, webhook_url: str, event_types: list[str]
    ) -> dict[str, Any]:
        body = {
            "name": "invoice-ledger",
            "description": "Invoicing notifications for invoice-ledger",
            "organizationId": organization_id,
            "products": [{"productId": INVOICING_PRODUCT, "eventTypes": event_types}],
            "webhookUrl": webhook_url,
            "healthCheckUrl": webhook_url,
            "notificationScope": "SELF",
            "retryPolicy": {"algorithm": "ARITHMETIC", "firstRetry": 1, "interval": 1,
                            "numberOfRetries": 3, "deactivateFlag": "true",
                            "repeatSequenceCount": 0, "repeatSequenceWaitTime": 0},
            "securityPolicy": {"securityType": "KEY"},
        }  # fmt: skip
        return await self._for(organization_id).call(
            "Create Webhook Subscription", "POST", "/notification-subscriptions/v2/webhooks",
            body=body, organization_id=None, read=_as_sent,
        )  # fmt: skip


def _payload_encryption(document: dict[str, Any]) -> dict[str, bool]:
    products = document.get(ARRAY_ITEMS)
    if not isinstance(products, list):
        raise ValueError("the products answer is not a list")
    encrypted: dict[str, bool] = {}
    for product in products:
        if not isinstance(product, dict) or product.get("productId") != INVOICING_PRODUCT:
            continue
        for event_type in product.get("eventTypes") or ():
            name = event_type.get("eventName") if isinstance(event_type, dict) else None
            if isinstance(name, str):
                encrypted[name] = event_type.get("payloadEncryption") in (True, "true")
    return encrypted


def _as_sent(document: dict[str, Any]) -> dict[str, Any]:
    """The answer as Cybersource sent it (any JSON object)."""
    return document
