"""Which invoice a fact is about: invoice numbers are unique per organization (merchant), not
globally, and one subscription may deliver several organizations' notifications, so an
invoice is identified by (organization id, invoice number).

Events are stored in one stream per invoice number; a stream may therefore hold several
organizations' invoices, told apart here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.domain.events import RecordedEvent

# Where no fact says which organization an invoice belongs to (a fact from before the ledger
# recorded organizations, a notification without one), the organization is unknown: "".
UNKNOWN_ORGANIZATION = ""


# Which organizations a read covers: one (its id; UNKNOWN_ORGANIZATION names the unknown one),
# any of a set (a merchant's, or the merchants' a token is limited to), or every one (None).
OrganizationScope = str | frozenset[str] | None


def scope_includes(scope: OrganizationScope, organization_id: str) -> bool:
    if scope is None:
        return True
    if isinstance(scope, str):
        return organization_id == scope
    return organization_id in scope


def narrowed(scope: OrganizationScope, narrower: OrganizationScope) -> OrganizationScope:
    """What both scopes cover: a request's filter within what its caller may see."""
    if scope is None:
        return narrower
    if narrower is None:
        return scope
    if isinstance(narrower, str):
        return narrower if scope_includes(scope, narrower) else frozenset()
    if isinstance(scope, str):
        return scope if scope in narrower else frozenset()
    return scope & narrower


@dataclass(frozen=True, slots=True, order=True)
class InvoiceKey:
    organization_id: str
    invoice_number: str


def organization_named_by(data: Mapping[str, Any]) -> str | None:
    """The organization a fact's data names, if any (v1 webhook facts name it under
    ``notification``)."""
    named = data.get("organizationId")
    if isinstance(named, str) and named:
        return named
    notification = data.get("notification")
    if isinstance(notification, Mapping):
        named = notification.get("organizationId")
        if isinstance(named, str) and named:
            return named
    return None


def invoices_in_stream(
    invoice_number: str, events: Iterable[RecordedEvent]
) -> dict[InvoiceKey, list[RecordedEvent]]:
    """A stream's events by the invoice they are about.

    A fact that names no organization belongs with the stream's other facts when they all
    name one organization; otherwise its organization is unknown.
    """
    named: dict[str, list[RecordedEvent]] = {}
    unnamed: list[RecordedEvent] = []
    for event in events:
        organization = organization_named_by(event.data)
        if organization is None:
            unnamed.append(event)
        else:
            named.setdefault(organization, []).append(event)
    if unnamed:
        home = next(iter(named)) if len(named) == 1 else UNKNOWN_ORGANIZATION
        named.setdefault(home, []).extend(unnamed)
    return {
        InvoiceKey(organization, invoice_number): sorted(group, key=lambda e: e.position)
        for organization, group in named.items()
    }
