"""The webhook's HTTP at the ASGI level: its headers read in one pass, its body read within a
bound, and its answers encoded once.

The receiver is called for every delivery Cybersource sends, so it works on the ASGI scope and
messages directly, as Starlette's request and response objects would (the same header lookup,
the same JSON bytes and headers), without building them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Send

from service.cybersource.webhook_signature import SIGNATURE_HEADER
from service.ingest.notification import KEPT_HEADERS

CONTENT_LENGTH = "content-length"
# The headers the receiver reads: the signature, the body's declared length, and those the
# inbox keeps. Any other header is passed over without being decoded.
_READ_HEADERS = frozenset(
    name.encode() for name in (SIGNATURE_HEADER, CONTENT_LENGTH, *KEPT_HEADERS)
)


def read_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers the receiver reads, by lowercase name, as Starlette's ``Headers.get``
    gives them: latin-1 text, the first of repeated ones."""
    found: dict[str, str] = {}
    for name, value in raw_headers:
        if name in _READ_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


class BodyTooLarge(Exception):
    pass


_CONTENT_LENGTH_PATTERN = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit accepts "²"


async def read_bounded_body(
    headers: Mapping[str, str], receive: Receive, max_body_bytes: int
) -> bytes:
    """The request body, refused (``BodyTooLarge``) as soon as it is declared or found to be
    larger than ``max_body_bytes``; ``ClientDisconnect`` when the client leaves first."""
    declared = headers.get(CONTENT_LENGTH)
    if (
        declared is not None
        and _CONTENT_LENGTH_PATTERN.fullmatch(declared.strip())
        and int(declared) > max_body_bytes
    ):
        raise BodyTooLarge
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the common case: the body in one message
        if len(body) > max_body_bytes:
            raise BodyTooLarge
        return body
    chunks = bytearray()
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.extend(message.get("body", b""))
        if len(chunks) > max_body_bytes:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(chunks)
        message = await receive()


@dataclass(frozen=True, slots=True)
class Answer:
    """A response, encoded: what Starlette's ``JSONResponse`` would send, without the object."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    @property
    def header_map(self) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in self.headers}

    async def send_to(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def json_answer(
    content: Mapping[str, Any], status: int = 200, extra_headers: Mapping[str, str] | None = None
) -> Answer:
    # JSONResponse's own rendering, so the bytes are the same as before.
    body = json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in (extra_headers or {}).items()]  # fmt: skip
    headers += [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]
    return Answer(status, body, tuple(headers))


def error_answer(status: int, error: str, detail: str) -> Answer:
    return json_answer({"error": error, "detail": detail}, status)


EMPTY_BAD_REQUEST = Answer(400, b"", ((b"content-length", b"0"),))
