"""Cybersource's REST API, as the reconciler and the subscribe command use it.

Every call is signed (HTTP Signature), bounded in time (connect and read timeouts), in rate
(a client-side leaky bucket) and in concurrency, and retried with exponential backoff and
jitter only when retrying can help: network errors, 429 and 5xx. A 400, 401 or 404 is an
answer, not an accident, and is raised at once with the call and Cybersource's reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.reconciler.http_signature import MerchantCredentials, http_date, sign_request

LIST_PAGE_SIZE_MAX = 100
LIST_PAGES_MAX = 100_000  # a bound on any sweep: ten million invoices


@dataclass(frozen=True)
class ClientLimits:
    max_requests_per_second: float = 5.0
    max_concurrency: int = 4
    attempts_max: int = 5
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


class CybersourceError(Exception):
    """Cybersource refused or failed a call; the message names the call and the reason."""

    def __init__(self, call: str, status: int | None, reason: str, message: str = "") -> None:
        detail = f"{call}: {reason}" + (f" ({message})" if message else "")
        if status is not None:
            detail = f"{call}: HTTP {status} {reason}" + (f" ({message})" if message else "")
        super().__init__(detail)
        self.call = call
        self.status = status
        self.reason = reason


class CybersourceNotFound(CybersourceError):
    pass


class _Transient(Exception):
    """A failure worth another attempt (network, 429, 5xx)."""

    def __init__(self, error: CybersourceError) -> None:
        super().__init__(str(error))
        self.error = error


class CybersourceClient:
    def __init__(
        self,
        base_url: str,
        credentials: MerchantCredentials,
        limits: ClientLimits = ClientLimits(),
    ) -> None:
        self._credentials = credentials
        self._limits = limits
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                limits.read_timeout_seconds, connect=limits.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=limits.max_concurrency),
        )
        self._host = self._http.base_url.netloc.decode()
        # A bucket holding a tenth of a second's requests (at least one): the rate holds over
        # any stretch of time, with no burst of a whole second's worth at once.
        capacity = max(1.0, limits.max_requests_per_second / 10)
        self._rate = AsyncLimiter(capacity, capacity / limits.max_requests_per_second)
        self._concurrency = asyncio.Semaphore(limits.max_concurrency)
        self.requests_sent = 0

    @property
    def merchant_id(self) -> str:
        return self._credentials.merchant_id

    async def __aenter__(self) -> CybersourceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def get_invoice(self, invoice_number: str) -> dict[str, Any]:
        path = f"/invoicing/v2/invoices/{quote(invoice_number, safe='')}"
        return await self._call("Get Invoice Details", "GET", path)

    async def list_invoices(
        self, offset: int, limit: int, status: str | None = None
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"offset": offset, "limit": limit}
        if status:
            query["status"] = status
        return await self._call("Get List of Invoices", "GET", "/invoicing/v2/invoices", query)

    async def iterate_invoices(
        self, status: str | None = None, page_size: int = LIST_PAGE_SIZE_MAX
    ) -> AsyncIterator[dict[str, Any]]:
        """Every invoice summary, page by page, until a short page or ``totalInvoices``."""
        offset = 0
        for _ in range(LIST_PAGES_MAX):
            page = await self.list_invoices(offset, page_size, status)
            invoices = page.get("invoices") or []
            if not isinstance(invoices, list):
                raise CybersourceError("Get List of Invoices", None, "invoices is not a list")
            for invoice in invoices:
                yield invoice
            offset += len(invoices)
            total = page.get("totalInvoices")
            if len(invoices) < page_size or (isinstance(total, int) and offset >= total):
                return
        raise CybersourceError("Get List of Invoices", None, f"more than {LIST_PAGES_MAX} pages")

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
        return await self._call("Create Webhook Key", "POST", "/kms/egress/v2/keys-sym", body=body)

    async def create_webhook_subscription(
        self, organization_id: str, webhook_url: str, event_types: list[str]
    ) -> dict[str, Any]:
        body = {
            "name": "invoice-ledger",
            "description": "Invoicing notifications for invoice-ledger",
            "organizationId": organization_id,
            "products": [{"productId": "customerInvoicing", "eventTypes": event_types}],
            "webhookUrl": webhook_url,
            "healthCheckUrl": webhook_url,
            "notificationScope": "SELF",
            "retryPolicy": {"algorithm": "ARITHMETIC", "firstRetry": 1, "interval": 1,
                            "numberOfRetries": 3, "deactivateFlag": "true",
                            "repeatSequenceCount": 0, "repeatSequenceWaitTime": 0},
            "securityPolicy": {"securityType": "KEY"},
        }  # fmt: skip
        return await self._call(
            "Create Webhook Subscription", "POST", "/notification-subscriptions/v2/webhooks",
            body=body,
        )  # fmt: skip

    async def _call(
        self,
        call: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        path_and_query = path + (f"?{urlencode(query)}" if query else "")
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._limits.attempts_max),
            wait=wait_exponential_jitter(
                multiplier=self._limits.backoff_initial_seconds,
                max=self._limits.backoff_max_seconds,
            ),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call, method, path_and_query, content)
        except _Transient as transient:
            raise transient.error from transient
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _attempt(
        self, call: str, method: str, path_and_query: str, content: bytes
    ) -> dict[str, Any]:
        async with self._concurrency, self._rate:
            headers = sign_request(
                self._credentials, method=method, host=self._host,
                path_and_query=path_and_query, date=http_date(time.time()), body=content,
            )  # fmt: skip
            headers["accept"] = "application/hal+json;charset=utf-8"
            if content:
                headers["content-type"] = "application/json;charset=utf-8"
            self.requests_sent += 1
            try:
                response = await self._http.request(
                    method, path_and_query, content=content or None, headers=headers
                )
            except httpx.TransportError as error:
                raise _Transient(CybersourceError(call, None, type(error).__name__)) from error
        return _answer(call, response)


def _answer(call: str, response: httpx.Response) -> dict[str, Any]:
    document = _json(response)
    reason = str(document.get("reason") or document.get("status") or response.reason_phrase)
    message = str(document.get("message") or "")
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(CybersourceError(call, response.status_code, reason, message))
    if response.status_code == 404:
        raise CybersourceNotFound(call, 404, reason, message)
    if response.status_code >= 300:
        raise CybersourceError(call, response.status_code, reason, message)
    if not document:
        raise CybersourceError(call, response.status_code, "the answer is not a JSON object")
    return document


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}
