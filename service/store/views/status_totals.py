"""``invoice_totals``: per (organization, status, currency), how many invoices, the sums of
their known totals and balances (and the provisional part of each) and how many lack one.

Kept from the rows a batch replaces and writes (``apply``), recounted from the live invoice
rows after a rebuild (``recount``), so both ways give the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.exact_sums import EXACT, Summed, grouped_sums
from service.store.schema import invoice_totals, invoices
from service.store.views.changes import ViewChanges
from service.store.views.keyed_rows import empty
from service.store.views.summed_changes import add_changes

TABLES = (invoice_totals,)
TotalsKey = tuple[str, str, str]  # organization, status, currency ("" when unknown)
TOTALS_KEYS = ("organization_id", "status", "currency")


@dataclass(frozen=True, slots=True)
class StatusTotals:
    """The figures of one invoice_totals row; invoices add to them and subtract from them.

    ``provisional_total`` and ``provisional_balance`` are the parts of ``total`` and
    ``balance`` that are provisional."""

    invoices: int = 0
    total: Decimal = Decimal(0)
    balance: Decimal = Decimal(0)
    without_total: int = 0
    without_balance: int = 0
    provisional_total: Decimal = Decimal(0)
    provisional_balance: Decimal = Decimal(0)

    @classmethod
    def of_invoice(
        cls,
        total: Decimal | None,
        balance: Decimal | None,
        sign: int,
        total_provisional: bool = False,
        balance_provisional: bool = False,
    ) -> StatusTotals:
        # An unknown amount adds nothing to its sum: it is counted apart, never as zero.
        signed_total = sign * total if total is not None else Decimal(0)
        signed_balance = sign * balance if balance is not None else Decimal(0)
        return cls(
            invoices=sign,
            total=signed_total,
            balance=signed_balance,
            without_total=sign if total is None else 0,
            without_balance=sign if balance is None else 0,
            provisional_total=signed_total if total_provisional else Decimal(0),
            provisional_balance=signed_balance if balance_provisional else Decimal(0),
        )

    def __add__(self, other: StatusTotals) -> StatusTotals:
        return StatusTotals(
            self.invoices + other.invoices,
            EXACT.add(self.total, other.total),
            EXACT.add(self.balance, other.balance),
            self.without_total + other.without_total,
            self.without_balance + other.without_balance,
            EXACT.add(self.provisional_total, other.provisional_total),
            EXACT.add(self.provisional_balance, other.provisional_balance),
        )


async def apply(connection: AsyncConnection, changes: ViewChanges) -> None:
    """The change of every (organization, status, currency), added up here in Python and added
    to the stored totals in SQL (summed_changes.py), without reading them back: SQLite's
    arithmetic on the stored text would be floating point, so amounts are never added there by
    its own +."""
    deltas = _totals_deltas(changes.removed_invoices, changes.added_invoices())
    await add_changes(
        connection,
        invoice_totals,
        TOTALS_KEYS,
        [_totals_row(key, delta) for key, delta in sorted(deltas.items())],
    )


async def recount(connection: AsyncConnection) -> None:
    """Totals from scratch, from the live invoice rows (after a rebuild's swap)."""
    await empty(connection, TABLES)
    groups = await grouped_sums(
        connection,
        invoices,
        [invoices.c.organization_id, invoices.c.status, invoices.c.currency],
        {
            "total": Summed(invoices.c.total_amount, provisional=invoices.c.total_provisional),
            "balance": Summed(
                invoices.c.balance_amount, provisional=invoices.c.balance_provisional
            ),
        },
    )
    rows = []
    for group in groups:
        organization, status, currency = group.key
        total, balance = group.sums["total"], group.sums["balance"]
        figures = StatusTotals(
            group.rows, total.known, balance.known, total.unknown, balance.unknown,
            total.provisional, balance.provisional,
        )  # fmt: skip
        rows.append(_totals_row((organization, status or "", currency or ""), figures))
    if rows:
        await connection.execute(insert(invoice_totals), rows)


def _totals_deltas(
    removed: Sequence[Any], added: Sequence[dict[str, Any]]
) -> dict[TotalsKey, StatusTotals]:
    """Per (organization, status, currency): the change the replaced invoices make."""
    changes = [
        (-1, r.organization_id, r.status, r.currency, r.total_amount, r.balance_amount,
         r.total_provisional, r.balance_provisional)
        for r in removed
    ] + [
        (1, r["organization_id"], r["status"], r["currency"], r["total_amount"],
         r["balance_amount"], r["total_provisional"], r["balance_provisional"])
        for r in added
    ]  # fmt: skip
    deltas: dict[TotalsKey, StatusTotals] = {}
    for sign, organization, status, currency, total, balance, *provisional in changes:
        key = (organization, status or "", currency or "")
        change = StatusTotals.of_invoice(total, balance, sign, *provisional)
        deltas[key] = deltas.get(key, StatusTotals()) + change
    return deltas


def _totals_row(key: TotalsKey, totals: StatusTotals) -> dict[str, Any]:
    organization, status, currency = key
    return {
        "organization_id": organization,
        "status": status,
        "currency": currency,
        "invoices": totals.invoices,
        "total_amount": totals.total,
        "balance_amount": totals.balance,
        "provisional_total_amount": totals.provisional_total,
        "provisional_balance_amount": totals.provisional_balance,
        "invoices_without_total": totals.without_total,
        "invoices_without_balance": totals.without_balance,
    }
