"""The organizations the sandbox serves, each with its own invoices: invoice numbers are unique
within an organization only, as Cybersource keeps them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from service.domain.status import InvoiceStatus
from service.sandbox.errors import DuplicateRecord, InvoiceNotFound, ValidationErrors
from service.sandbox.invoices import HistoryEntry, InvoiceContent, SandboxInvoice
from service.sandbox.transactions import Transactions


class OrganizationInvoices:
    def __init__(self, organization_id: str) -> None:
        self.organization_id = organization_id
        self._invoices: dict[str, SandboxInvoice] = {}
        self.transactions = Transactions()
        self._next_generated_number = 1
        # Listings by status, kept until an invoice is added or changes (its status may have):
        # a sweep pages through one listing without filtering every invoice for each page.
        self._revision = 0
        self._listings: dict[InvoiceStatus | None, tuple[int, list[SandboxInvoice]]] = {}

    def __len__(self) -> int:
        return len(self._invoices)

    def draft(
        self, invoice_number: str | None, content: InvoiceContent, now: datetime
    ) -> SandboxInvoice:
        """A new draft under the merchant's number, or under a generated one that no invoice
        of the organization has."""
        if invoice_number is None:
            invoice_number = self._unused_number()
        elif invoice_number in self._invoices:
            raise DuplicateRecord(f"invoice {invoice_number} already exists")
        invoice = SandboxInvoice.draft(invoice_number, content, now)
        invoice.on_change = self._recorded
        self._invoices[invoice_number] = invoice
        self._revision += 1
        return invoice

    def get(self, invoice_number: str) -> SandboxInvoice:
        invoice = self._invoices.get(invoice_number)
        if invoice is None:
            raise InvoiceNotFound(f"invoice {invoice_number} was not found")
        return invoice

    def listed(self, status: InvoiceStatus | None = None) -> list[SandboxInvoice]:
        """Newest first, as Cybersource's examples list them (do not modify the list)."""
        known = self._listings.get(status)
        if known is not None and known[0] == self._revision:
            return known[1]
        listing = [
            invoice
            for invoice in reversed(self._invoices.values())
            if status is None or invoice.status is status
        ]
        self._listings[status] = (self._revision, listing)
        return listing

    def _recorded(self, invoice: SandboxInvoice, entry: HistoryEntry) -> None:
        self._revision += 1
        self.transactions.recorded(invoice, entry)

    def _unused_number(self) -> str:
        # Merchants may have taken some numbers; skipping them ends within len(invoices) steps.
        while str(self._next_generated_number) in self._invoices:
            self._next_generated_number += 1
        number = str(self._next_generated_number)
        self._next_generated_number += 1
        return number


class Organizations:
    """Every organization the configured keys may act for; the first is the helpers' default."""

    def __init__(self, organization_ids: Iterable[str]) -> None:
        self._books = {
            organization: OrganizationInvoices(organization) for organization in organization_ids
        }
        if not self._books:
            raise ValueError("the sandbox needs at least one organization")
        self.default_id = next(iter(self._books))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._books)

    def invoices_of(self, organization_id: str | None) -> OrganizationInvoices:
        book = self._books.get(organization_id or self.default_id)
        if book is None:
            raise ValidationErrors(f"the sandbox serves no organization {organization_id!r}")
        return book
