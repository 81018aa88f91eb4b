"""The opaque cursors the fronts hand out for the next page: of invoices (a page key), of the
sorted invoice list (a sort key, either way), and of deliveries (a delivery id). A cursor
that is not one of these is ``UnreadableCursor``."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date
from decimal import Decimal

from service.cybersource.envelope import IDENTIFIER_LENGTH_MAX, is_storable
from service.read.instants import parse_day, parse_instant
from service.read.invoice_pages import PageKey
from service.read.sorted_invoices import InvoiceSort, SortKey

DELIVERY_ID_MAX = 2**63 - 1
AMOUNT_TEXT_LENGTH_MAX = 60


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


def encode_sorted_cursor(sort: InvoiceSort, key: SortKey, *, before: bool) -> str:
    """Where a page of the sorted list begins (``before``) or ends, for that sort only."""
    value = None if key.value is None else str(key.value)
    raw = json.dumps(
        [
            "sorted", sort.by, "desc" if sort.descending else "asc",
            "before" if before else "after", value, key.updated_at.isoformat(),
            key.organization_id, key.invoice_number,
        ]
    )  # fmt: skip
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_sorted_cursor(cursor: str, sort: InvoiceSort) -> tuple[SortKey, bool]:
    """The key and whether the page is before it; a cursor made for another sort is
    ``UnreadableCursor``."""
    order = "desc" if sort.descending else "asc"
    match _decoded(cursor):
        case [
            "sorted", str() as by, str() as direction, "before" | "after" as side,
            str() | None as value, str() as updated_at, str() as organization_id,
            str() as invoice_number,
        ] if (by, direction) == (sort.by, order) and all(
            _is_identifier(text) for text in (organization_id, invoice_number)
        ):  # fmt: skip
            try:
                key = SortKey(
                    _sorted_value(sort.by, value),
                    parse_instant(updated_at),
                    organization_id,
                    invoice_number,
                )
            except (ValueError, ArithmeticError):
                raise UnreadableCursor() from None
            return key, side == "before"
    raise UnreadableCursor()


def _sorted_value(by: str, value: str | None) -> date | Decimal | None:
    if value is None or by == "updated":
        if value is not None:
            raise ValueError("a cursor by last change holds no sorted value")
        return None
    if by == "due":
        return parse_day(value)
    amount = Decimal(value)
    if not amount.is_finite() or len(value) > AMOUNT_TEXT_LENGTH_MAX:
        raise ValueError("not an amount")
    return amount
