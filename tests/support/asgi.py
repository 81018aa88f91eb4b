"""Calling the ASGI application directly, with headers exactly as given (no HTTP client fixes
them up): for inputs a real HTTP server might refuse before the application sees them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message


async def post_in_process(
    app: ASGIApp, path: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    request_messages = [{"type": "http.request", "body": body, "more_body": False}]
    response: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> Message:
        if request_messages:
            return request_messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    content = response["body"]
    return response["status"], json.loads(content) if content else None
