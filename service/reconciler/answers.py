"""What Cybersource's HTTP answers mean: answered, refused (a 400, 401, 403 or 404 is an answer,
not an accident), or failed in a way another attempt may mend (network errors, 429 and 5xx),
with the call and Cybersource's reason named; and how long a ``Retry-After`` asks to wait."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx


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
# Retrying will not mend these: the credentials, the clock or the configured organizations.
NEEDS_AN_OPERATOR = frozenset({CallFailure.UNAUTHORIZED, CallFailure.ORGANIZATION_NOT_PERMITTED})


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


class TransientFailure(Exception):
    """A failure worth another attempt (network, 429, 5xx)."""

    def __init__(self, error: CybersourceError) -> None:
        super().__init__(str(error))
        self.error = error


# Where read_answer puts the items of an answer that is a JSON array, not an object.
ARRAY_ITEMS = "items"


def read_answer(call: str, response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or the error its status means."""
    document = _json(response)
    reason = str(document.get("reason") or document.get("status") or response.reason_phrase)
    message = str(document.get("message") or "")
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientFailure(CybersourceError(call, response.status_code, reason, message))
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
    if isinstance(document, list):
        return {ARRAY_ITEMS: document}  # one answer is a bare array: the products
    return document if isinstance(document, dict) else {}


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
