"""A 429 with Retry-After holds the REST client back for as long as it says, within a bound,
against a local server that answers 429 first and records when each request arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.reconciler.answers import retry_after_seconds
from service.reconciler.client import CybersourceClient
from service.reconciler.transport import ClientLimits
from tests.support.cybersource_sandbox import MERCHANT
from tests.support.server import serving

pytestmark = pytest.mark.anyio

# Backoff far shorter than any Retry-After below: a retry that comes sooner ignored it.
LIMITS = ClientLimits(
    max_requests_per_second=1000,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.02,
    retry_after_max_seconds=5.0,
)
# Scheduling slack on a shared machine, either side of an expected wait.
SLACK_SECONDS = 0.05
LATE_SECONDS = 1.5
ARRIVAL_POLLS_MAX = 500  # of 10 ms each: the first request is due at once


class BusyCybersource:
    """Answers the first ``busy_answers`` requests 429 with ``retry_after``, then 200."""

    def __init__(self, retry_after: str, busy_answers: int = 1) -> None:
        self.retry_after = retry_after
        self.busy_answers = busy_answers
        self.arrivals: list[float] = []

    async def invoice(self, request: Request) -> Response:
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) <= self.busy_answers:
            return JSONResponse(
                {"status": "TOO_MANY_REQUESTS", "reason": "TOO_MANY_REQUESTS"},
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        return JSONResponse({"id": request.path_params["number"], "status": "SENT"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/invoicing/v2/invoices/{number}", self.invoice)])


@pytest.fixture
def busy_for_one_second() -> Iterator[tuple[str, BusyCybersource]]:
    busy = BusyCybersource("1")
    with serving(busy.app()) as url:
        yield url, busy


async def test_a_429_is_retried_only_after_its_retry_after(
    busy_for_one_second: tuple[str, BusyCybersource],
) -> None:
    url, busy = busy_for_one_second
    async with CybersourceClient(url, MERCHANT, LIMITS) as client:
        assert (await client.get_invoice("7"))["id"] == "7"
    first, second = busy.arrivals
    assert 1.0 - SLACK_SECONDS <= second - first < 1.0 + LATE_SECONDS


async def test_other_calls_wait_out_a_retry_after_too(
    busy_for_one_second: tuple[str, BusyCybersource],
) -> None:
    url, busy = busy_for_one_second
    async with CybersourceClient(url, MERCHANT, LIMITS) as client:
        told = asyncio.create_task(client.get_invoice("7"))
        for _ in range(ARRIVAL_POLLS_MAX):
            if busy.arrivals:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the 429 has been read
        other = await client.get_invoice("8")
        await told
    assert other["id"] == "8"
    first = busy.arrivals[0]
    assert all(arrival - first >= 1.0 - SLACK_SECONDS for arrival in busy.arrivals[1:])


async def test_a_retry_after_beyond_the_bound_is_waited_only_up_to_the_bound() -> None:
    busy = BusyCybersource("3600")
    bounded = ClientLimits(
        max_requests_per_second=1000,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.02,
        retry_after_max_seconds=0.5,
    )
    with serving(busy.app()) as url:
        async with CybersourceClient(url, MERCHANT, bounded) as client:
            assert (await client.get_invoice("7"))["id"] == "7"
    first, second = busy.arrivals
    assert 0.5 - SLACK_SECONDS <= second - first < 0.5 + LATE_SECONDS


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    in_two_minutes = format_datetime(now + timedelta(minutes=2), usegmt=True)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds(in_two_minutes, now) == 120.0
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    for unreadable in (None, "", "soon", "-5", "1.5", "²"):
        assert retry_after_seconds(unreadable) is None
