"""What the ledger's read model holds of the invoices on one page of Get List of Invoices.

One query per page (a hundred invoices), on the read model's primary key. The read model may
lag the event store by what the projector has not applied yet; a lag can only make an invoice
look different from its summary, so at worst it costs a detail call, never a missed change.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.reconciler.summaries import LedgerInvoice
from service.store.errors import unavailability_as_store_error
from service.store.schema import invoices


class SqlLedgerView:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def invoices(
        self, organization_id: str, invoice_numbers: Collection[str]
    ) -> dict[str, LedgerInvoice]:
        """The read model's invoices of this organization with these numbers, by number."""
        if not invoice_numbers:
            return {}
        columns = invoices.c
        query = select(
            columns.invoice_number,
            columns.status,
            columns.currency,
            columns.total_amount,
            columns.balance_amount,
            columns.due_date,
            columns.customer_name,
            columns.customer_erased,
        ).where(
            columns.organization_id == organization_id,
            columns.invoice_number.in_(list(invoice_numbers)),
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {
            row.invoice_number: LedgerInvoice(
                status=row.status,
                currency=row.currency,
                total_amount=row.total_amount,
                balance_amount=row.balance_amount,
                due_date=row.due_date,
                customer_name=row.customer_name,
                customer_erased=row.customer_erased,
            )
            for row in rows
        }
