"""Get List of Invoices items written once per state of their invoice.

Writing a summary (a dozen nested fields, exact Decimals, in Python) costs far more than
everything else a list page does, so a sweep paging through a large portfolio would measure
the sandbox's JSON writer rather than its own pacing. Each summary is written again as soon
as anything it shows changes, so a page reads exactly as one written afresh."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from service.domain.status import InvoiceStatus
from service.sandbox import json_numbers
from service.sandbox.documents import invoice_summary
from service.sandbox.invoices import InvoiceContent, SandboxInvoice
from service.sandbox.json_numbers import WrittenJSON

# Everything ``invoice_summary`` reads beside the invoice number, which never changes.
# ``content`` is frozen and replaced whole by an update, so comparing it is mostly an
# identity check.
SummaryState: TypeAlias = tuple[InvoiceStatus, InvoiceContent, str, datetime]


class WrittenSummaries:
    """The written summaries of every invoice listed so far, one per organization and number
    (the sandbox never forgets an invoice, so neither does this)."""

    def __init__(self) -> None:
        self._written: dict[tuple[str, str], tuple[SummaryState, WrittenJSON]] = {}

    def of(self, organization_id: str, invoice: SandboxInvoice) -> WrittenJSON:
        state = (invoice.status, invoice.content, invoice.payment_link, invoice.created_at)
        key = (organization_id, invoice.invoice_number)
        known = self._written.get(key)
        if known is not None and known[0] == state:
            return known[1]
        written = WrittenJSON(json_numbers.dumps(invoice_summary(invoice)))
        self._written[key] = (state, written)
        return written
