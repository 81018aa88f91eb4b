"""Writing the invoice read models and the projector's checkpoint, and the projector lease."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, delete, false, func, insert, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.invoice import InvoiceState
from service.domain.money import to_micros
from service.store.database import is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.schema import (
    invoice_collections,
    invoice_totals,
    invoice_versions,
    invoices,
    projection_checkpoints,
    rebuild_invoice_collections,
    rebuild_invoice_versions,
    rebuild_invoices,
)

INVOICES_PROJECTION = "invoices"


class LeaseLost(Exception):
    """Another projector took over this projection; this one must stop writing."""


@dataclass(frozen=True, slots=True)
class ProjectedInvoice:
    """An invoice's derived rows: its current state and every state it was in."""

    state: InvoiceState
    history: Sequence[InvoiceState]
    updated_at: datetime  # when the store last recorded a fact about it


@dataclass(frozen=True, slots=True)
class ReadModelTables:
    invoices: Table
    versions: Table
    collections: Table


LIVE_TABLES = ReadModelTables(invoices, invoice_versions, invoice_collections)
REBUILD_TABLES = ReadModelTables(
    rebuild_invoices, rebuild_invoice_versions, rebuild_invoice_collections
)


class SqlReadModelStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect_insert = postgresql.insert if is_postgresql(engine) else sqlite.insert

    async def checkpoint(self, name: str = INVOICES_PROJECTION) -> int:
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            position = await connection.scalar(
                select(projection_checkpoints.c.position).where(
                    projection_checkpoints.c.name == name
                )
            )
        return int(position or 0)

    async def acquire_lease(
        self,
        owner: str,
        lease_seconds: float,
        name: str = INVOICES_PROJECTION,
        *,
        take_over: bool = False,
    ) -> bool:
        """Take or renew the lease; True while this owner is the projection's one writer.

        ``take_over`` takes it even from a live holder (a rebuild does): that holder's next
        write is refused and it stands by until the lease is free again.
        """
        now = datetime.now(UTC)
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await connection.execute(
                self._dialect_insert(projection_checkpoints)
                .values(name=name, position=0, updated_at=now)
                .on_conflict_do_nothing(index_elements=[projection_checkpoints.c.name])
            )
            taken = await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name,
                    or_(
                        true() if take_over else false(),
                        projection_checkpoints.c.owner.is_(None),
                        projection_checkpoints.c.owner == owner,
                        projection_checkpoints.c.lease_expires_at < now,
                    ),
                )
                .values(owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
        return taken.rowcount == 1

    async def release_lease(self, owner: str, name: str = INVOICES_PROJECTION) -> None:
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name, projection_checkpoints.c.owner == owner
                )
                .values(owner=None, lease_expires_at=None)
            )

    async def apply(
        self,
        projected: Sequence[ProjectedInvoice],
        *,
        owner: str,
        from_position: int,
        to_position: int,
        name: str = INVOICES_PROJECTION,
    ) -> None:
        """Replace the rows of these invoices and move the checkpoint, in one transaction.

        The checkpoint moves only from ``from_position`` and only for the lease holder, so a
        projector that lost its lease, or raced another, writes nothing.
        """
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            moved = await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name,
                    projection_checkpoints.c.owner == owner,
                    projection_checkpoints.c.position == from_position,
                )
                .values(position=to_position, updated_at=datetime.now(UTC))
            )
            if moved.rowcount != 1:
                raise LeaseLost(f"projection {name!r} is no longer at {from_position} for {owner}")
            await replace_invoices(connection, LIVE_TABLES, projected)

    async def write_rebuild_batch(self, projected: Sequence[ProjectedInvoice]) -> None:
        """Add rows to the rebuild tables (emptied when the rebuild began).

        On PostgreSQL with COPY: a rebuild writes every row of the read model, and COPY does
        that several times faster than batched INSERTs.
        """
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            if not is_postgresql(self._engine):
                await insert_invoices(connection, REBUILD_TABLES, projected)
                return
            driver_connection = (await connection.get_raw_connection()).driver_connection
            assert driver_connection is not None
            for table, rows in _rows_by_table(REBUILD_TABLES, projected):
                columns = [column.name for column in table.columns]
                await driver_connection.copy_records_to_table(
                    table.name, records=_copy_records(columns, rows), columns=columns
                )

    async def clear_rebuild_tables(self) -> None:
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            await _empty(connection, _tables(REBUILD_TABLES))

    async def swap_in_rebuild(
        self, *, owner: str, to_position: int, name: str = INVOICES_PROJECTION
    ) -> None:
        """Make the rebuilt rows live and set the checkpoint, atomically for every reader."""
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            moved = await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == name, projection_checkpoints.c.owner == owner
                )
                .values(position=to_position, updated_at=datetime.now(UTC))
            )
            if moved.rowcount != 1:
                raise LeaseLost(f"projection {name!r} lease lost during the rebuild")
            await _empty(connection, _tables(LIVE_TABLES))
            for live, rebuilt in zip(_tables(LIVE_TABLES), _tables(REBUILD_TABLES), strict=True):
                await connection.execute(insert(live).from_select(list(rebuilt.c), select(rebuilt)))
            await _empty(connection, _tables(REBUILD_TABLES))
            await _recount_totals(connection)


async def _empty(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    if connection.dialect.name == "postgresql":
        # Inside the swap's transaction: readers wait for its commit, then see the new rows.
        names = ", ".join(connection.dialect.identifier_preparer.quote(t.name) for t in tables)
        await connection.execute(text(f"TRUNCATE {names}"))
        return
    for table in tables:
        await connection.execute(delete(table))


def _tables(tables: ReadModelTables) -> tuple[Table, Table, Table]:
    return tables.invoices, tables.versions, tables.collections


async def replace_invoices(
    connection: AsyncConnection, tables: ReadModelTables, projected: Sequence[ProjectedInvoice]
) -> None:
    if not projected:
        return
    numbers = [item.state.invoice_number for item in projected]
    replaced = await connection.execute(
        delete(tables.invoices)
        .where(tables.invoices.c.invoice_number.in_(numbers))
        .returning(*_totals_columns(tables.invoices))
    )
    deltas = _totals_deltas(replaced.all(), [_invoice_row(item) for item in projected])
    for table in (tables.versions, tables.collections):
        await connection.execute(delete(table).where(table.c.invoice_number.in_(numbers)))
    await insert_invoices(connection, tables, projected)
    if tables is LIVE_TABLES:
        await _add_to_totals(connection, deltas)


async def insert_invoices(
    connection: AsyncConnection, tables: ReadModelTables, projected: Sequence[ProjectedInvoice]
) -> None:
    for table, rows in _rows_by_table(tables, projected):
        await connection.execute(insert(table), rows)


def _rows_by_table(
    tables: ReadModelTables, projected: Sequence[ProjectedInvoice]
) -> list[tuple[Table, list[dict[str, Any]]]]:
    candidates = [
        (tables.invoices, [_invoice_row(item) for item in projected]),
        (tables.versions, [row for item in projected for row in _version_rows(item)]),
        (tables.collections, [row for item in projected for row in _collection_rows(item)]),
    ]
    return [(table, rows) for table, rows in candidates if rows]


def _totals_columns(table: Table) -> list[Any]:
    return [table.c.status, table.c.currency, table.c.total_micros, table.c.balance_micros]


TotalsKey = tuple[str, str]


def _totals_deltas(
    removed: Sequence[Any], added: Sequence[dict[str, Any]]
) -> dict[TotalsKey, list[int]]:
    """Per (status, currency): change in invoices, total and balance."""
    deltas: dict[TotalsKey, list[int]] = {}
    rows = [(-1, r.status, r.currency, r.total_micros, r.balance_micros) for r in removed]
    rows += [(1, r["status"], r["currency"], r["total_micros"], r["balance_micros"]) for r in added]
    for sign, status, currency, total, balance in rows:
        delta = deltas.setdefault((status or "", currency or ""), [0, 0, 0])
        delta[0] += sign
        delta[1] += sign * (total or 0)
        delta[2] += sign * (balance or 0)
    return deltas


async def _add_to_totals(connection: AsyncConnection, deltas: dict[TotalsKey, list[int]]) -> None:
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    for (status, currency), (invoices_delta, total_delta, balance_delta) in sorted(deltas.items()):
        if invoices_delta == total_delta == balance_delta == 0:
            continue
        statement = dialect_insert(invoice_totals).values(
            status=status,
            currency=currency,
            invoices=invoices_delta,
            total_micros=total_delta,
            balance_micros=balance_delta,
        )
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[invoice_totals.c.status, invoice_totals.c.currency],
                set_={
                    "invoices": invoice_totals.c.invoices + statement.excluded.invoices,
                    "total_micros": invoice_totals.c.total_micros + statement.excluded.total_micros,
                    "balance_micros": invoice_totals.c.balance_micros
                    + statement.excluded.balance_micros,
                },
            )
        )


async def _recount_totals(connection: AsyncConnection) -> None:
    """Totals from scratch, from the live invoice rows (after a rebuild's swap)."""
    await _empty(connection, [invoice_totals])
    grouped = select(
        func.coalesce(invoices.c.status, ""),
        func.coalesce(invoices.c.currency, ""),
        func.count(),
        func.coalesce(func.sum(invoices.c.total_micros), 0),
        func.coalesce(func.sum(invoices.c.balance_micros), 0),
    ).group_by(invoices.c.status, invoices.c.currency)
    columns = ["status", "currency", "invoices", "total_micros", "balance_micros"]
    await connection.execute(insert(invoice_totals).from_select(columns, grouped))


def _copy_records(columns: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as COPY records; JSON documents serialised, as the driver's codec expects."""
    records = list(map(itemgetter(*columns), rows))
    if "payments" not in columns:
        return records
    at = columns.index("payments")
    return [(*record[:at], json.dumps(record[at]), *record[at + 1 :]) for record in records]


def _micros(amount: Any) -> int | None:
    return None if amount is None else to_micros(amount)


def _invoice_row(item: ProjectedInvoice) -> dict[str, Any]:
    state = item.state
    return {
        "invoice_number": state.invoice_number,
        "status": state.status.value if state.status else None,
        "currency": state.currency,
        "total_micros": _micros(state.total_amount),
        "balance_micros": _micros(state.balance_amount),
        "due_date": state.due_date,
        "customer_name": state.customer_name,
        "customer_email": state.customer_email,
        "payments": [
            {
                "transactionId": payment.transaction_id,
                "amount": None if payment.amount is None else str(payment.amount),
                "date": payment.received_at.isoformat(),
            }
            for payment in state.payments
        ],
        "last_event_at": state.last_event_at,
        "last_position": state.last_position,
        "updated_at": item.updated_at,
    }


def _version_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
    rows = []
    for index, state in enumerate(item.history):
        following = item.history[index + 1] if index + 1 < len(item.history) else None
        rows.append(
            {
                "invoice_number": state.invoice_number,
                "valid_from": state.last_event_at,
                "valid_to": following.last_event_at if following else None,
                "status": state.status.value if state.status else None,
                "currency": state.currency,
                "balance_micros": _micros(state.balance_amount),
                "due_date": state.due_date,
            }
        )
    return rows


def _collection_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
    return [
        {
            "invoice_number": item.state.invoice_number,
            "sequence": sequence,
            "collected_at": collection.collected_at,
            "currency": item.state.currency,
            "amount_micros": to_micros(collection.amount),
        }
        for sequence, collection in enumerate(item.state.collections, 1)
        if collection.amount is not None
    ]
