"""Which organizations a request reads: what it asks for (``merchant``, ``organizationId``)
within what its caller may see (a token limited to merchants sees only their organizations).

A merchant is a name for its organizations (LEDGER_MERCHANTS_FILE, docs/merchants.md); the
ledger's facts and read models are kept by organization, so every read is narrowed to a set
of organizations in one place, here, whatever front asks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from service.domain.identity import OrganizationScope, narrowed
from service.fronts.auth import Caller
from service.fronts.errors import bad_parameter


class ScopeRequest(Protocol):
    @property
    def merchant(self) -> str | None: ...

    @property
    def organization_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ScopeFilters:
    """A request's filters as a page reads them from its query."""

    merchant: str | None
    organization_id: str | None


class MerchantOrganizations:
    """The configured merchants, each with the organizations it acts for."""

    def __init__(self, organizations_by_merchant: Mapping[str, Iterable[str]]) -> None:
        self._by_merchant = {
            merchant: frozenset(organizations)
            for merchant, organizations in organizations_by_merchant.items()
        }

    @property
    def merchants(self) -> list[str]:
        return sorted(self._by_merchant)

    def of(self, merchant: str) -> frozenset[str]:
        """The organizations of ``merchant``; a 400 naming the parameter if none is known."""
        organizations = self._by_merchant.get(merchant)
        if organizations is None:
            known = ", ".join(self.merchants) or "none"
            raise bad_parameter("merchant", f"no merchant {merchant[:100]!r} (configured: {known})")
        return organizations

    def visible_to(self, caller: Caller) -> list[str]:
        """The merchants whose organizations the caller sees, to choose among."""
        seen = caller.organizations
        return [m for m in self.merchants if seen is None or self._by_merchant[m] <= seen]

    def limited_to(self, merchants: Iterable[str]) -> frozenset[str]:
        """Every organization of these merchants (a token's limit)."""
        return frozenset().union(*(self._by_merchant.get(name, ()) for name in merchants))

    def scope(self, caller: Caller, request: ScopeRequest) -> OrganizationScope:
        """The organizations ``request`` reads for ``caller``: an empty set when what it asks
        for lies outside what the caller may see (nothing found, never another's)."""
        scope: OrganizationScope = caller.organizations
        if request.merchant is not None:
            if caller.sees_every_merchant:
                scope = narrowed(scope, self.of(request.merchant))
            else:
                # A limited token learns nothing of the merchants configured: one not its own,
                # configured or not, finds nothing (never a 400 listing every merchant).
                scope = narrowed(scope, self._by_merchant.get(request.merchant, frozenset()))
        if request.organization_id is not None:
            scope = narrowed(scope, request.organization_id)
        return scope
