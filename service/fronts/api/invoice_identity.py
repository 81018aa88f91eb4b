"""Which organization's invoice a request for an invoice number means.

Invoice numbers are unique per organization only. A request may name the organization
(``organizationId``; the empty string names the unknown organization); when it does not and
the number exists in several organizations, the request is ambiguous and the answer names
them, rather than picking one.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.fronts.errors import ambiguous_invoice, unknown_invoice


def organization_meant(
    invoice_number: str, organizations: Iterable[str], named: str | None, when: str = ""
) -> str:
    """The one organization, among those having this invoice number, the request means."""
    having = sorted(set(organizations))
    if named is not None:
        if named not in having:
            raise unknown_invoice(invoice_number, named, when)
        return named
    if not having:
        raise unknown_invoice(invoice_number, None, when)
    if len(having) > 1:
        raise ambiguous_invoice(invoice_number, having)
    return having[0]
