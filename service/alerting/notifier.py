"""The built-in notifier: every interval, a digest of the dead letters and conflicts that
began waiting for an operator since the last digest, posted to ``LEDGER_NOTIFIER_URL`` and
signed as Standard Webhooks, for deployments without Prometheus and Alertmanager.

- At most one digest per interval, and none when nothing new waits.
- One sender across replicas: the holder of the ``notifier`` lease (projection_checkpoints).
  A delivery is named until a receiver acknowledges a digest that names it
  (``delivery_notices``), so a digest that was not acknowledged is sent again, with its items
  and any newer ones, at the next interval, and none is passed over.
- A send is retried with exponential backoff (a connection that fails, 429 or 5xx), a
  bounded number of times, each attempt signed anew with the same ``webhook-id``.
- A failing notifier logs and counts, and never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from service.alerting.digest import digest_document
from service.alerting.standard_webhooks import signed_headers
from service.store.delivery_notices import record_notices, untold_count, untold_waiting
from service.store.delivery_queue import deliveries_waiting
from service.store.errors import StoreUnavailable
from service.store.views.leases import SqlLeases

log = structlog.get_logger("service.alerting")

NOTIFIER = "notifier"
ITEMS_PER_DIGEST_MAX = 100
SEND_ATTEMPTS_MAX = 5
BACKOFF_SECONDS_MAX = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
# The lease outlives a few intervals, so that a holder that stopped is replaced soon after.
LEASES_PER_INTERVAL = 3
# The longest a digest's send can take: every attempt timing out, and the waits between them.
SEND_SECONDS_MAX = SEND_ATTEMPTS_MAX * REQUEST_TIMEOUT_SECONDS + sum(
    min(2**attempt, BACKOFF_SECONDS_MAX) for attempt in range(SEND_ATTEMPTS_MAX - 1)
)
LEASE_MARGIN_SECONDS = 30.0


class DigestNotSent(Exception):
    """The receiver did not acknowledge the digest."""


class DigestRefused(DigestNotSent):
    """The receiver refused the digest (a 4xx other than 429): not retried now."""


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, DigestNotSent) and not isinstance(error, DigestRefused)


class DigestNotifier:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        url: str,
        key: bytes,
        interval_seconds: float,
        console_url: str | None,
        owner: str,
        on_digest: Callable[[str], None] = lambda outcome: None,
        backoff_seconds_max: float = BACKOFF_SECONDS_MAX,
    ) -> None:
        self._engine = engine
        self._url = url
        self._key = key
        self._interval_seconds = interval_seconds
        self._console_url = console_url
        self._owner = owner
        self._on_digest = on_digest
        self._backoff_seconds_max = backoff_seconds_max
        self._leases = SqlLeases(engine)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as client:
            try:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._interval_seconds)
                    if stop.is_set():
                        break
                    await self._round(client)
            finally:
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.release_lease(self._owner, NOTIFIER)

    async def _round(self, client: httpx.AsyncClient) -> None:
        try:
            # Held past a digest's longest send (every attempt timing out, with its backoff).
            lease_seconds = max(
                self._interval_seconds * LEASES_PER_INTERVAL,
                SEND_SECONDS_MAX + LEASE_MARGIN_SECONDS,
            )
            if await self._leases.acquire_lease(self._owner, lease_seconds, NOTIFIER):
                await self.send_due(client)
        except StoreUnavailable:
            log.warning("notifier.store_unavailable")
        except DigestNotSent as failure:
            self._on_digest("failed")
            log.warning("notifier.digest_not_sent", detail=str(failure))
        except Exception as error:  # a notifier fault must never stop the server
            self._on_digest("failed")
            log.error("notifier.failed", exc_info=error)

    async def send_due(self, client: httpx.AsyncClient) -> bool:
        """Send the digest of what began waiting since the last one; False when nothing did."""
        items = await untold_waiting(self._engine, ITEMS_PER_DIGEST_MAX)
        if not items:
            return False
        # Counted, not just noticed: every delivery this digest leaves for the next ones.
        omitted = 0
        if len(items) == ITEMS_PER_DIGEST_MAX:
            omitted = max(await untold_count(self._engine) - len(items), 0)
        document = digest_document(
            items,
            await deliveries_waiting(self._engine),
            created_at=datetime.now(UTC),
            console_url=self._console_url,
            items_omitted=omitted,
        )
        body = json.dumps(document, separators=(",", ":")).encode()
        # The same id on every attempt and every resend of these items: receivers drop repeats.
        named = [item.delivery_id for item in items]
        message_id = "ledger-digest-" + hashlib.sha256(repr(named).encode()).hexdigest()[:32]
        await self._post(client, message_id, body)
        await record_notices(self._engine, named, message_id, datetime.now(UTC))
        self._on_digest("sent")
        log.info("notifier.digest_sent", message_id=message_id, items=len(items))
        return True

    async def _post(self, client: httpx.AsyncClient, message_id: str, body: bytes) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(SEND_ATTEMPTS_MAX),
            wait=wait_exponential(multiplier=1, max=self._backoff_seconds_max),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                headers = signed_headers(self._key, message_id, int(time.time()), body)
                try:
                    # The status is the whole answer: its body is never read, so a receiver
                    # that answers with a huge or endless one holds up nothing.
                    async with client.stream(
                        "POST", self._url, content=body, headers=headers
                    ) as answer:
                        status_code = answer.status_code
                except httpx.TransportError as error:
                    raise DigestNotSent(f"{type(error).__name__} reaching the receiver") from None
                if status_code == 429 or status_code >= 500:
                    raise DigestNotSent(f"the receiver answered {status_code}")
                if not 200 <= status_code < 300:
                    # A 4xx other than 429 will not change by sending again: the next
                    # interval tries once more, with whatever else began waiting.
                    raise DigestRefused(f"the receiver answered {status_code}")
