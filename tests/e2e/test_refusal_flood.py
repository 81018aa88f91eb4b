"""Bodies that do not verify, made to cost the most to re-serialise in the payload form, cannot
hold back valid deliveries: the form is computed off the event loop, one at a time, and past a
bounded queue the answer is 503 at once. The real ``serve`` process, over sockets."""

from __future__ import annotations

import asyncio
import base64
import secrets
import statistics
import time
from pathlib import Path

import httpx
import pytest

from service.ingest.payload_forms import PayloadFormsBusy, PayloadFormWorker
from tests.support.databases import fresh_sqlite_database
from tests.support.process import serving_process
from tests.support.webhooks import (
    WEBHOOK_KEY_ID,
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

WEBHOOK_PATH = "/webhooks/cybersource"
FLOOD_SENDERS = 8
FLOOD_BODY_BYTES = 250_000  # within the payload form's default bound (256 KiB)
FLOOD_REQUESTS_PER_SENDER_MAX = 200
VALID_DELIVERIES = 40
VALID_PAUSE_SECONDS = 0.05
# The 90th percentile of valid acknowledgements under the flood. With the payload form on the
# event loop, each refused body held it for over a hundred milliseconds and valid deliveries
# waited seconds (some answered 503); in a process of its own, they take what they take
# without the flood (about 10 ms here), with room left for a busy machine.
VALID_P90_SECONDS_MAX = 0.25


def costly_refused_body() -> tuple[bytes, dict[str, str]]:
    """A payload of tiny numbers (which only Python's own re-serialisation prints as
    JavaScript does), signed with a wrong signature naming the real key and a fresh time."""
    numbers = ",".join(["1e-7"] * (FLOOD_BODY_BYTES // 5 - 20))
    body = f'{{"payloads":[{{"data":{{"invoiceNumber":"X","n":[{numbers}]}}}}]}}'.encode()
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    signature = f"t={int(time.time() * 1000)};keyId={WEBHOOK_KEY_ID};sig={wrong}"
    return body, {"Content-Type": "application/json", "v-c-signature": signature}


async def flood(base_url: str, stop: asyncio.Event) -> list[int]:
    statuses = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for _ in range(FLOOD_REQUESTS_PER_SENDER_MAX):
            if stop.is_set():
                break
            body, headers = costly_refused_body()
            statuses.append(
                (await client.post(WEBHOOK_PATH, content=body, headers=headers)).status_code
            )
    return statuses


async def deliver(base_url: str) -> list[tuple[int, float]]:
    answers = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for index in range(VALID_DELIVERIES):
            body = encode(invoice_notification(f"INV-FLOOD-{index}"))
            started = time.perf_counter()
            response = await client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
            answers.append((response.status_code, time.perf_counter() - started))
            await asyncio.sleep(VALID_PAUSE_SECONDS)
    return answers


def test_valid_deliveries_are_acknowledged_promptly_under_a_flood_of_costly_refusals(
    tmp_path: Path,
) -> None:
    with fresh_sqlite_database(tmp_path) as database_url:
        environment = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_REFUSALS_RECORDED_PER_SECOND": "0",
        }
        with serving_process(environment, tmp_path / "serve.log") as served:

            async def scenario() -> tuple[list[tuple[int, float]], list[int]]:
                stop = asyncio.Event()
                floods = [
                    asyncio.create_task(flood(served.base_url, stop)) for _ in range(FLOOD_SENDERS)
                ]
                await asyncio.sleep(1.0)  # the flood is under way
                try:
                    answers = await deliver(served.base_url)
                finally:
                    stop.set()
                refused = [
                    status for statuses in await asyncio.gather(*floods) for status in statuses
                ]
                return answers, refused

            answers, refused = asyncio.run(scenario())
    assert [status for status, _ in answers] == [200] * VALID_DELIVERIES
    p90 = statistics.quantiles([seconds for _, seconds in answers], n=10)[-1]
    assert p90 < VALID_P90_SECONDS_MAX, sorted(round(s, 3) for _, s in answers)
    assert refused and set(refused) <= {401, 503}


@pytest.mark.anyio
async def test_bodies_beyond_the_waiting_bound_are_turned_away_at_once() -> None:
    worker = PayloadFormWorker(waiting_max=2)
    body, _ = costly_refused_body()
    try:
        first, second, third = await asyncio.gather(
            worker.content(body), worker.content(body), worker.content(body),
            return_exceptions=True,
        )  # fmt: skip
    finally:
        await worker.aclose()
    assert isinstance(first, bytes) and first == second
    assert isinstance(third, PayloadFormsBusy)


@pytest.mark.anyio
async def test_a_worker_that_died_is_replaced_for_the_next_body() -> None:
    worker = PayloadFormWorker()
    body = b'{"payload": {"n": 1.0, "s": "x"}}'
    try:
        assert await worker.content(body) == b'{"n":1,"s":"x"}'
        process = worker._process  # the test's one look inside: the process to kill
        assert process is not None
        process.kill()
        await process.wait()
        assert await worker.content(body) == b'{"n":1,"s":"x"}'
    finally:
        await worker.aclose()
