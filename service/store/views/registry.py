"""The registered views: what the projector's one transaction applies and a rebuild's swap
recounts, in this order. A new view or report is one module with ``TABLES``, ``apply`` and
``recount``, and one line here.

The invoice rows come first: a rebuild's swap makes them live, and the views after them
recount from them. A batch's ``apply`` may run in any order (every view reads the same rows
before and after, in ``ViewChanges``), so one order serves both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.views import (
    fold_snapshots,
    invoice_rows,
    report_aggregates,
    status_totals,
)
from service.store.views.changes import ViewChanges


class View(Protocol):
    """One read model: its tables, kept by ``apply`` in the projector's transaction and made
    whole again by ``recount`` in a rebuild's swap."""

    @property
    def TABLES(self) -> Sequence[Table]: ...

    async def apply(self, connection: AsyncConnection, changes: ViewChanges) -> None: ...

    async def recount(self, connection: AsyncConnection) -> None: ...


VIEWS: tuple[View, ...] = (invoice_rows, status_totals, report_aggregates, fold_snapshots)
