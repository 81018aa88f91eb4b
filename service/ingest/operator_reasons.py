"""The reason an operator gives for a correction or a resolution: what it must be to be kept
beside the record it explains."""

from __future__ import annotations

from service.cybersource.envelope import is_storable

REASON_LENGTH_MAX = 500


class BadReason(ValueError):
    """The reason cannot be kept; the message says why."""


def operator_reason(reason: str, action: str) -> str:
    """``reason`` without surrounding blanks; ``BadReason`` naming ``action`` ("a correction")
    when it is empty, too long, or holds what the database cannot store."""
    reason = reason.strip()
    if not reason or len(reason) > REASON_LENGTH_MAX:
        raise BadReason(f"{action} needs a reason of 1 to {REASON_LENGTH_MAX} characters")
    if not is_storable(reason):
        # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded at all.
        raise BadReason("the reason holds a NUL or a lone surrogate")
    return reason
