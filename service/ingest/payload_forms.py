"""Where the payload form of a signature is computed: in a worker process of lower priority,
one body at a time, with a bounded queue.

Why: a body whose raw form did not verify may still be signed in the payload form, which
costs a parse and a JavaScript-style re-serialisation (``JSON.stringify``): tens of
milliseconds for the largest body it is computed for, and about ten times that for a body
built to miss the fast path (tiny or huge numbers, lone surrogates). Anyone can send such
bodies with a wrong signature. Computed on the event loop they held every other delivery
behind them (8 senders of 250 KB bodies took valid deliveries' median from 9 ms to 951 ms);
on a thread they still did, less, since the json module's C code holds the interpreter for
the whole of a large body. So:

* the work runs in a process of its own (``payload_form_process``), niced, so the event loop
  never waits for it and the operating system gives the loop the CPU first; the flood as a
  whole gets at most that one process, however many send it;
* at most ``waiting_max`` bodies wait for it: beyond them a delivery is answered 503 with
  ``Retry-After`` at once, nothing recorded, and Cybersource retries it. A genuine
  payload-signed delivery can meet that answer only while a flood fills the queue; pinning
  ``LEDGER_WEBHOOK_SIGNED_CONTENT=raw`` (when the account signs the raw body) skips this
  work entirely, and the raw form is always checked first, for one HMAC.

The process starts when first needed and again whenever it has ended (or was stopped for
taking longer than ``answer_timeout_seconds``): the body it was given is then answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import structlog

from service.ingest.payload_form_process import FRAME_HEADER, HAS_CONTENT

log = structlog.get_logger("service.ingest")

# Bodies waiting for (or in) the worker; each is at most LEDGER_WEBHOOK_PAYLOAD_FORM_MAX_BYTES.
WAITING_MAX = 16
RETRY_AFTER_SECONDS = 5
# The slowest body within the default size bound takes about a fifth of a second.
ANSWER_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 2.0
WORKER_COMMAND = (sys.executable, "-m", "service.ingest.payload_form_process")


class PayloadFormsBusy(Exception):
    """The payload form could not be computed now (the queue is full, or the worker failed):
    answer 503, the sender retries."""


class PayloadFormWorker:
    def __init__(
        self,
        *,
        waiting_max: int = WAITING_MAX,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        self._waiting_max = waiting_max
        self._answer_timeout_seconds = answer_timeout_seconds
        self._waiting = 0
        self._turn = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None

    async def content(self, raw_body: bytes) -> bytes | None:
        """``payload_content(raw_body)``, computed by the worker process; ``PayloadFormsBusy``
        at once when ``waiting_max`` bodies already wait, or if the worker fails."""
        if self._waiting >= self._waiting_max:
            raise PayloadFormsBusy
        self._waiting += 1
        try:
            async with self._turn:
                return await self._ask(raw_body)
        finally:
            self._waiting -= 1

    async def _ask(self, raw_body: bytes) -> bytes | None:
        process = await self._running_process()
        assert process.stdin is not None and process.stdout is not None
        try:
            async with asyncio.timeout(self._answer_timeout_seconds):
                process.stdin.write(FRAME_HEADER.pack(len(raw_body)) + raw_body)
                await process.stdin.drain()
                if await process.stdout.readexactly(1) != HAS_CONTENT:
                    return None
                (length,) = FRAME_HEADER.unpack(await process.stdout.readexactly(FRAME_HEADER.size))
                return await process.stdout.readexactly(length)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as error:
            log.error("webhook.payload_form_worker_failed", error=type(error).__name__)
            await self._stop_process()
            raise PayloadFormsBusy from error
        except asyncio.CancelledError:
            # Cut off mid-frame (the server is stopping): the pipe holds half an exchange, so
            # this process can serve no one else.
            self._process = None
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise

    async def _running_process(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                *WORKER_COMMAND,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        return self._process

    async def aclose(self) -> None:
        """Stop the worker: its input closed, it ends; killed if it does not within a bound."""
        await self._stop_process()

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
