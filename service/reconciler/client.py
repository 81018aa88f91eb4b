"""Cybersource's REST API, as the reconciler and the subscribe command use it.

Every call is signed (HTTP Signature), bounded in time (connect and read timeouts), in rate
(a client-side leaky bucket) and in concurrency, and retried with exponential backoff and
jitter only when retrying can help: network errors, 429 and 5xx. A 429 or 503 carrying
``Retry-After`` holds back every call of the client for that long (at most
``retry_after_max_seconds``): the server has said when it will take requests again. A 400, 401
or 404 is an answer, not an accident, and is raised at once with the call and Cybersource's
reason.

An answer is read before it counts as answered: Get Transaction Details is checked against its
model, and an answer that does not fit is a failed call whose error names the field.

Each call is made for one organization (the ``v-c-merchant-id`` header); a portfolio's key
acts for the organizations it was issued for. A failed call is logged (the call, the
organization, the HTTP status and Cybersource's reason; never its free-text message, which can
echo request data) and reported to the client's observer, which the service turns into metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import structlog
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.cybersource.http_signature import MerchantCredentials, http_date, sign_request
from service.cybersource.transaction_details import TransactionDetails, read_transaction_details

log = structlog.get_logger("service.reconciler")

LIST_PAGE_SIZE_MAX = 100
LIST_PAGES_MAX = 100_000  # a bound on any sweep: ten million invoices
LOGGED_REASON_CHARACTERS_MAX = 100

Answer = TypeVar("Answer")


class CallOutcome(StrEnum):
    """How a call ended, after its retries."""

    ANSWERED = "answered"
    REFUSED = "refused"  # Cybersource answered 4xx, or the key may not act for the organization
    FAILED = "failed"  # unreachable, timed out, 429 or 5xx every time, or an unreadable answer


class CallFailure(StrEnum):
    """Why a call did not succeed, in words an alert can be written against."""

    UNAUTHORIZED = "unauthorized"  # 401 or 403: the credentials, the clock or the organization
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    INVALID_ANSWER = "invalid_answer"
    ORGANIZATION_NOT_PERMITTED = "organization_not_permitted"


# Told of every call once it has ended: its outcome, and why when it did not succeed.
CallObserver = Callable[[CallOutcome, CallFailure | None], None]


@dataclass(frozen=True)
class ClientLimits:
    max_requests_per_second: float = 5.0
    max_concurrency: int = 4
    attempts_max: int = 5
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # The longest a Retry-After is honoured for: a larger one (or a date far ahead) must not
    # stall the reconciler for hours; the call's retries go on after this.
    retry_after_max_seconds: float = 60.0


class CybersourceError(Exception):
    """Cybersource refused or failed a call; the message names the call and the reason."""

    def __init__(
        self,
        call: str,
        status: int | None,
        reason: str,
        message: str = "",
        failure: CallFailure | None = None,
    ) -> None:
        detail = f"{call}: {reason}" + (f" ({message})" if message else "")
        if status is not None:
            detail = f"{call}: HTTP {status} {reason}" + (f" ({message})" if message else "")
        super().__init__(detail)
        self.call = call
        self.status = status
        self.reason = reason
        self.failure = failure or _failure_for_status(status)

    @property
    def outcome(self) -> CallOutcome:
        return CallOutcome.REFUSED if self.failure in _REFUSED else CallOutcome.FAILED


_REFUSED = frozenset(
    {
        CallFailure.UNAUTHORIZED,
        CallFailure.NOT_FOUND,
        CallFailure.BAD_REQUEST,
        CallFailure.ORGANIZATION_NOT_PERMITTED,
    }
)
_REFUSALS = {
    401: CallFailure.UNAUTHORIZED,
    403: CallFailure.UNAUTHORIZED,
    404: CallFailure.NOT_FOUND,
}


def _failure_for_status(status: int | None) -> CallFailure:
    if status is None:
        return CallFailure.INVALID_ANSWER
    if status == 429:
        return CallFailure.RATE_LIMITED
    if status >= 500:
        return CallFailure.SERVER_ERROR
    if status in _REFUSALS:
        return _REFUSALS[status]
    return CallFailure.BAD_REQUEST if status >= 400 else CallFailure.INVALID_ANSWER


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
        *,
        observer: CallObserver | None = None,
    ) -> None:
        self._credentials = credentials
        self._limits = limits
        self._observer = observer
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
        # No call is sent before this (monotonic clock): set by a Retry-After.
        self._held_back_until = 0.0
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

    async def get_invoice(
        self, invoice_number: str, organization_id: str | None = None
    ) -> dict[str, Any]:
        """Get Invoice Details, for ``organization_id`` (by default the key's own merchant)."""
        path = f"/invoicing/v2/invoices/{quote(invoice_number, safe='')}"
        return await self._call("Get Invoice Details", "GET", path, organization_id=organization_id)

    async def transaction_details(
        self, transaction_id: str, organization_id: str | None = None
    ) -> TransactionDetails:
        """Get Transaction Details (``GET /tss/v2/transactions/{id}``) of one payment
        transaction, read and checked. A transaction Cybersource does not know (or not for
        this organization) raises ``CybersourceNotFound`` at once, never retried; an answer
        that does not fit raises ``CybersourceError`` naming the field."""
        path = f"/tss/v2/transactions/{quote(transaction_id, safe='')}"
        return await self._read_call(
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
        return await self._call(
            "Get List of Invoices", "GET", "/invoicing/v2/invoices", query,
            organization_id=organization_id,
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
        acting_for = organization_id or self._credentials.merchant_id
        self._report_failure(error, "GET", "/invoicing/v2/invoices", acting_for)
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
        *,
        organization_id: str | None = None,
    ) -> dict[str, Any]:
        """The answer as Cybersource sent it (any JSON object)."""
        return await self._read_call(
            call, method, path, query, body, organization_id=organization_id, read=_as_sent
        )

    async def _read_call(
        self,
        call: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        organization_id: str | None,
        read: Callable[[dict[str, Any]], Answer],
    ) -> Answer:
        """The answer as ``read`` makes it (a ``ValueError`` from it: an invalid answer)."""
        acting_for = organization_id or self._credentials.merchant_id
        path_and_query = path + (f"?{urlencode(query)}" if query else "")
        try:
            if not self._credentials.may_act_for(acting_for):
                raise CybersourceError(
                    call, None, f"the key does not act for organization {acting_for!r}",
                    failure=CallFailure.ORGANIZATION_NOT_PERMITTED,
                )  # fmt: skip
            document = await self._retrying(call, method, path_and_query, acting_for, body)
            try:
                answer = read(document)
            except ValueError as invalid:
                raise CybersourceError(
                    call, None, str(invalid), failure=CallFailure.INVALID_ANSWER
                ) from None
        except CybersourceError as error:
            self._report_failure(error, method, path, acting_for)
            raise
        if self._observer is not None:
            self._observer(CallOutcome.ANSWERED, None)
        return answer

    async def _retrying(
        self,
        call: str,
        method: str,
        path_and_query: str,
        organization_id: str,
        body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
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
                    return await self._attempt(
                        call, method, path_and_query, content, organization_id
                    )
        except _Transient as transient:
            raise transient.error from transient
        raise AssertionError("unreachable: tenacity returns or raises")

    def _report_failure(
        self, error: CybersourceError, method: str, path: str, organization_id: str
    ) -> None:
        # The path names at most an invoice number; the query string and Cybersource's
        # free-text message stay out of the log (either may carry request data).
        level = log.error if error.failure in _NEEDS_AN_OPERATOR else log.warning
        level(
            "cybersource.call_failed",
            call=error.call,
            method=method,
            path=path,
            organization_id=organization_id,
            status=error.status,
            reason=error.reason[:LOGGED_REASON_CHARACTERS_MAX],
            failure=error.failure.value,
        )
        if self._observer is not None:
            self._observer(error.outcome, error.failure)

    async def _attempt(
        self,
        call: str,
        method: str,
        path_and_query: str,
        content: bytes,
        organization_id: str,
    ) -> dict[str, Any]:
        async with self._concurrency:
            await self._wait_out_retry_after()
            async with self._rate:
                response = await self._send(call, method, path_and_query, content, organization_id)
        if response.status_code in (429, 503):
            self._hold_back(call, retry_after_seconds(response.headers.get("retry-after")))
        return _answer(call, response)

    async def _send(
        self,
        call: str,
        method: str,
        path_and_query: str,
        content: bytes,
        organization_id: str,
    ) -> httpx.Response:
        headers = sign_request(
            self._credentials, method=method, host=self._host,
            path_and_query=path_and_query, date=http_date(time.time()), body=content,
            organization_id=organization_id,
        )  # fmt: skip
        headers["accept"] = "application/hal+json;charset=utf-8"
        if content:
            headers["content-type"] = "application/json;charset=utf-8"
        self.requests_sent += 1
        try:
            return await self._http.request(
                method, path_and_query, content=content or None, headers=headers
            )
        except httpx.TransportError as error:
            failure = (
                CallFailure.TIMEOUT
                if isinstance(error, httpx.TimeoutException)
                else CallFailure.UNREACHABLE
            )
            raise _Transient(
                CybersourceError(call, None, type(error).__name__, failure=failure)
            ) from error

    def _hold_back(self, call: str, seconds: float | None) -> None:
        """Every call waits out a Retry-After, not only the one that was told: they all go to
        the same server, which has said it will not take them sooner."""
        if seconds is None:
            return  # the exponential backoff alone spaces the retries
        honoured_seconds = min(seconds, self._limits.retry_after_max_seconds)
        log.info(
            "cybersource.retry_after",
            call=call,
            retry_after_seconds=seconds,
            waiting_seconds=honoured_seconds,
        )
        self._held_back_until = max(self._held_back_until, time.monotonic() + honoured_seconds)

    async def _wait_out_retry_after(self) -> None:
        delay_seconds = self._held_back_until - time.monotonic()
        if delay_seconds > 0:
            await asyncio.sleep(delay_seconds)


_RETRY_AFTER_SECONDS_PATTERN = re.compile(r"[0-9]{1,10}")  # ASCII digits: isdigit accepts "²"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header's delay in seconds (delta-seconds or an HTTP date; RFC 9110
    §10.2.3), or None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS_PATTERN.fullmatch(text):
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None  # an HTTP date is always GMT; a date without a zone is not one
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


# Retrying will not mend these: the credentials, the clock or the configured organizations.
_NEEDS_AN_OPERATOR = frozenset({CallFailure.UNAUTHORIZED, CallFailure.ORGANIZATION_NOT_PERMITTED})


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


def _as_sent(document: dict[str, Any]) -> dict[str, Any]:
    return document


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}
