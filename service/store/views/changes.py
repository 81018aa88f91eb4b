"""What one projector batch changes in the read models: the invoices it projected, the rows
they replace (read once, before any view writes) and the rows they become.

Every view's ``apply`` reads these, so the views of a batch may run in any order: each one
sees the same rows before and after, whatever another view has written already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.invoice import InvoiceState
from service.domain.provisional import provisional_payments
from service.store.schema import invoice_collections, invoice_versions, invoices
from service.store.views.keyed_rows import chunks, rows_keyed

# Rows read per statement for the rows a batch replaces.
KEYS_PER_READ_MAX = 500
INVOICE_KEY = ("organization_id", "invoice_number")
# What the views read of the invoice rows a batch replaces: their key and their figures.
_REPLACED_INVOICE_COLUMNS = [
    invoices.c[name]
    for name in (
        *INVOICE_KEY, "status", "currency", "total_amount", "balance_amount",
        "total_provisional", "balance_provisional",
    )
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProjectedInvoice:
    """An invoice's derived rows: its current state and every state it was in.

    ``state.organization_id`` and ``state.invoice_number`` identify the invoice.
    """

    state: InvoiceState
    history: Sequence[InvoiceState]
    updated_at: datetime  # when the store last recorded a fact about it
    # None: ``history`` is every state, and the invoice number's rows are replaced whole.
    # Otherwise ``history`` holds the states from this instant on, which replace the state row
    # valid from it (the rows before it stand), and the first ``collections_kept`` collections
    # stand too, of the ``collections_before`` it had: an invoice folded onto its snapshot
    # rewrites only what changed.
    history_from: datetime | None = None
    collections_kept: int = 0
    collections_before: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.state.organization_id, self.state.invoice_number)


@dataclass(frozen=True, slots=True)
class ViewChanges:
    """One batch: ``whole`` invoices replace every row of their invoice numbers in every
    organization (a stream is re-projected whole, so the invoices it yields now are all there
    are); ``advanced`` ones, folded onto their snapshots, replace their state row from
    ``history_from`` and their collections after ``collections_kept``. ``removed_*``: the
    stored rows those writes replace; ``fold_snapshots``: each projected stream's new
    snapshot (None: it has none), as of ``to_position``."""

    whole: Sequence[ProjectedInvoice]
    advanced: Sequence[ProjectedInvoice]
    to_position: int
    fold_snapshots: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    removed_invoices: Sequence[Any] = ()
    removed_versions: Sequence[Mapping[Any, Any]] = ()
    removed_collections: Sequence[Mapping[Any, Any]] = ()
    # The rows written, made once for every view that reads them (by ``_added``).
    _added_rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def projected(self) -> tuple[ProjectedInvoice, ...]:
        return (*self.whole, *self.advanced)

    @property
    def removed_whole_keys(self) -> list[tuple[str, str]]:
        """The (organization, invoice number) of every invoice row the ``whole`` ones replace."""
        numbers = {item.state.invoice_number for item in self.whole}
        return [
            (row.organization_id, row.invoice_number)
            for row in self.removed_invoices
            if row.invoice_number in numbers
        ]

    def added_invoices(self) -> list[dict[str, Any]]:
        return self._added("invoices", lambda: [invoice_row(item) for item in self.projected])

    def added_versions(self) -> list[dict[str, Any]]:
        return self._added(
            "versions", lambda: [row for item in self.projected for row in version_rows(item)]
        )

    def added_collections(self) -> list[dict[str, Any]]:
        return self._added(
            "collections",
            lambda: [row for item in self.projected for row in collection_rows(item)],
        )

    def _added(self, table: str, rows: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if table not in self._added_rows:
            self._added_rows[table] = rows()
        return self._added_rows[table]


async def read_changes(
    connection: AsyncConnection,
    projected: Sequence[ProjectedInvoice],
    to_position: int,
    fold_snapshots: Mapping[str, Mapping[str, Any] | None],
) -> ViewChanges:
    """The batch's changes, with the stored rows it replaces read now, in the writing
    transaction (after the checkpoint moved, which serialises writers)."""
    whole = [item for item in projected if item.history_from is None]
    advanced = [item for item in projected if item.history_from is not None]
    removed_invoices = await _invoices_numbered(
        connection, sorted({item.state.invoice_number for item in whole})
    )
    whole_keys = [(row.organization_id, row.invoice_number) for row in removed_invoices]
    advanced_keys = [item.key for item in advanced]
    removed_invoices += await rows_keyed(
        connection, invoices, INVOICE_KEY, advanced_keys, _REPLACED_INVOICE_COLUMNS
    )
    versions_from = [(*item.key, item.history_from) for item in advanced]
    stale_collections = [
        (*item.key, sequence)
        for item in advanced
        for sequence in range(item.collections_kept + 1, item.collections_before + 1)
    ]
    removed_versions = [
        *await rows_keyed(connection, invoice_versions, INVOICE_KEY, whole_keys),
        *await rows_keyed(
            connection, invoice_versions, (*INVOICE_KEY, "valid_from"), versions_from
        ),
    ]
    removed_collections = [
        *await rows_keyed(connection, invoice_collections, INVOICE_KEY, whole_keys),
        *await rows_keyed(
            connection, invoice_collections, (*INVOICE_KEY, "sequence"), stale_collections
        ),
    ]
    return ViewChanges(
        whole,
        advanced,
        to_position,
        fold_snapshots,
        removed_invoices,
        [row._mapping for row in removed_versions],
        [row._mapping for row in removed_collections],
    )


async def _invoices_numbered(connection: AsyncConnection, numbers: Sequence[str]) -> list[Any]:
    """The invoice rows of these invoice numbers, in every organization."""
    found: list[Any] = []
    for chunk in chunks(numbers, KEYS_PER_READ_MAX):
        result = await connection.execute(
            select(*_REPLACED_INVOICE_COLUMNS).where(invoices.c.invoice_number.in_(chunk))
        )
        found += result.all()
    return found


def invoice_row(item: ProjectedInvoice) -> dict[str, Any]:
    state = item.state
    return {
        "organization_id": state.organization_id,
        "invoice_number": state.invoice_number,
        **_state_figures(state),
        "customer_name": state.customer_name,
        "customer_email": state.customer_email,
        "customer_erased": state.customer_erased,
        "payments": [
            {
                "transactionId": payment.transaction_id,
                "amount": None if payment.amount is None else str(payment.amount),
                "date": payment.received_at.isoformat(),
                "provisional": provisional,
            }
            for payment, provisional in zip(
                state.payments, provisional_payments(state), strict=True
            )
        ],
        "last_event_at": state.last_event_at,
        "last_position": state.last_position,
        "updated_at": item.updated_at,
    }


def _state_figures(state: InvoiceState) -> dict[str, Any]:
    """The columns of a state, in its invoice row and in its row of the history."""
    return {
        "status": state.status.value if state.status else None,
        "currency": state.currency,
        "total_amount": state.total_amount,
        "balance_amount": state.balance_amount,
        "total_provisional": state.total_provisional,
        "balance_provisional": state.balance_provisional,
        "due_date": state.due_date,
    }


def version_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
    rows = []
    for index, state in enumerate(item.history):
        following = item.history[index + 1] if index + 1 < len(item.history) else None
        rows.append(
            {
                "organization_id": item.state.organization_id,
                "invoice_number": state.invoice_number,
                "valid_from": state.last_event_at,
                "valid_to": following.last_event_at if following else None,
                **_state_figures(state),
            }
        )
    return rows


def collection_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
    return [
        {
            "organization_id": item.state.organization_id,
            "invoice_number": item.state.invoice_number,
            "sequence": sequence,
            "collected_at": collection.collected_at,
            "currency": item.state.currency,
            "amount": _collected_amount(collection.amount),
            "provisional": collection.provisional,
        }
        for sequence, collection in enumerate(
            item.state.collections[item.collections_kept :], item.collections_kept + 1
        )
    ]


def _collected_amount(amount: Decimal | None) -> Decimal | None:
    """None: money arrived, how much is not yet known. Facts that contradict each other (a
    balance stated above the total) can make the fold's difference negative: no money is
    collected negatively, so that amount is unknown too, and the row says incomplete,
    rather than the projector stopping on a notification Cybersource signed."""
    return None if amount is not None and amount < 0 else amount
