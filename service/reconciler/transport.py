"""Calls to Cybersource's REST API, signed and bounded.

Every call is authenticated (HTTP Signature or a JWT), bounded in time (connect and read
timeouts), in rate (a client-side leaky bucket) and in concurrency, and retried with
exponential backoff and jitter only when retrying can help: network errors, 429 and 5xx. A
429 or 503 carrying
``Retry-After`` holds back every call of the transport for that long (at most
``retry_after_max_seconds``): the server has said when it will take requests again.

Each call is made for one organization (the ``v-c-merchant-id`` header); a portfolio's key
acts for the organizations it was issued for. A failed call is logged (the call, the
organization, the HTTP status and Cybersource's reason; never its free-text message, which can
echo request data) and reported to the observer, which the service turns into metrics.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import structlog
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.cybersource.credentials import RequestCredentials
from service.reconciler.answers import (
    NEEDS_AN_OPERATOR,
    CallFailure,
    CallObserver,
    CallOutcome,
    CybersourceError,
    TransientFailure,
    read_answer,
    retry_after_seconds,
)

log = structlog.get_logger("service.reconciler")

LOGGED_REASON_CHARACTERS_MAX = 100

Answer = TypeVar("Answer")


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


class SignedTransport:
    def __init__(
        self,
        base_url: str,
        credentials: RequestCredentials,
        limits: ClientLimits,
        observer: CallObserver | None,
    ) -> None:
        self.credentials = credentials
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

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
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
        acting_for = organization_id or self.credentials.merchant_id
        path_and_query = path + (f"?{urlencode(query)}" if query else "")
        try:
            if not self.credentials.may_act_for(acting_for):
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
            self.report_failure(error, method, path, acting_for)
            raise
        if self._observer is not None:
            self._observer(CallOutcome.ANSWERED, None)
        return answer

    def report_failure(
        self, error: CybersourceError, method: str, path: str, organization_id: str
    ) -> None:
        # The path names at most an invoice number; the query string and Cybersource's
        # free-text message stay out of the log (either may carry request data).
        level = log.error if error.failure in NEEDS_AN_OPERATOR else log.warning
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

    async def _retrying(
        self,
        call: str,
        method: str,
        path_and_query: str,
        organization_id: str,
        body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        send = partial(self._send, call, method, path_and_query, content, organization_id)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._limits.attempts_max),
            wait=wait_exponential_jitter(
                multiplier=self._limits.backoff_initial_seconds,
                max=self._limits.backoff_max_seconds,
            ),
            retry=retry_if_exception_type(TransientFailure),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call, send)
        except TransientFailure as transient:
            raise transient.error from transient
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _attempt(
        self, call: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> dict[str, Any]:
        async with self._concurrency:
            await self._wait_out_retry_after()
            async with self._rate:
                response = await send()
        if response.status_code in (429, 503):
            self._hold_back(call, retry_after_seconds(response.headers.get("retry-after")))
        return read_answer(call, response)

    async def _send(
        self,
        call: str,
        method: str,
        path_and_query: str,
        content: bytes,
        organization_id: str,
    ) -> httpx.Response:
        # Signed at each attempt: the Date header (or the JWT's iat) must be when it is sent.
        headers = self.credentials.authenticate(
            method=method, host=self._host, path_and_query=path_and_query, body=content,
            organization_id=organization_id, now=time.time(),
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
            raise TransientFailure(
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
