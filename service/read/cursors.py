"""The opaque cursors the fronts hand out for the next page: of invoices (a page key) and of
deliveries (a delivery id). A cursor that is not one of these is ``UnreadableCursor``."""

from __future__ import annotations

import base64
import binascii
import json

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX, is_storable
from service.read.instants import parse_instant
from service.read.invoice_pages import PageKey

DELIVERY_ID_MAX = 2**63 - 1


class UnreadableCursor(ValueError):
    """Not a cursor this ledger issued."""


def encode_page_cursor(key: PageKey) -> str:
    raw = json.dumps([key.updated_at.isoformat(), key.organization_id, key.invoice_number]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_cursor(cursor: str) -> PageKey:
    match _decoded(cursor):
        case [str() as updated_at, str() as organization_id, str() as invoice_number] if all(
            _is_identifier(text) for text in (organization_id, invoice_number)
        ):
            try:
                return PageKey(parse_instant(updated_at), organization_id, invoice_number)
            except ValueError:
                pass
    raise UnreadableCursor()


def encode_delivery_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["delivery", delivery_id]).encode()).decode()


def decode_delivery_cursor(cursor: str) -> int:
    match _decoded(cursor):
        case ["delivery", int() as delivery_id] if 0 < delivery_id <= DELIVERY_ID_MAX:
            return delivery_id
    raise UnreadableCursor()


def _decoded(cursor: str) -> object:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise UnreadableCursor() from None


def _is_identifier(text: str) -> bool:
    return len(text) <= IDENTIFIER_LENGTH_MAX and is_storable(text)
