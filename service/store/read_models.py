"""Writing the invoice read models and the projector's checkpoint, and the projector lease."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import (
    Dialect,
    Table,
    TypeDecorator,
    delete,
    false,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.invoice import InvoiceState
from service.domain.provisional import provisional_payments
from service.store import report_aggregates
from service.store.database import database_now, is_postgresql
from service.store.errors import unavailability_as_store_error
from service.store.exact_sums import EXACT, Summed, grouped_sums
from service.store.schema import (
    invoice_collections,
    invoice_fold_snapshots,
    invoice_totals,
    invoice_versions,
    invoices,
    projection_checkpoints,
    rebuild_invoice_collections,
    rebuild_invoice_versions,
    rebuild_invoices,
)

INVOICES_PROJECTION = "invoices"
# How long copying the rebuilt rows into the live tables may take, per table.
SWAP_COPY_SECONDS_MAX = 30 * 60.0
# Keeps each statement's parameters well under SQLite's limit of 32,766.
KEYS_PER_STATEMENT_MAX = 5_000


class LeaseLost(Exception):
    """Another projector took over this projection; this one must stop writing."""


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


@dataclass(frozen=True, slots=True)
class ReadModelTables:
    invoices: Table
    versions: Table
    collections: Table


LIVE_TABLES = ReadModelTables(invoices, invoice_versions, invoice_collections)
REBUILD_TABLES = ReadModelTables(
    rebuild_invoices, rebuild_invoice_versions, rebuild_invoice_collections
)


def host_now() -> datetime:
    return datetime.now(UTC)


class SqlReadModelStore:
    def __init__(
        self, engine: AsyncEngine, *, clock: Callable[[], datetime] = host_now
    ) -> None:
        """``clock`` (the host's) dates checkpoint updates; leases use the database's clock."""
        self._engine = engine
        self._clock = clock
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
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            # Expiry is reckoned on the database's clock alone: replicas whose host clocks
            # disagree would otherwise take a live lease, or keep a lapsed one, by the skew.
            now = await database_now(connection)
            await connection.execute(
                self._dialect_insert(projection_checkpoints)
                .values(name=name, position=0, updated_at=self._clock())
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
        fold_snapshots: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Replace the rows of these invoices and move the checkpoint, in one transaction.

        ``fold_snapshots``: each projected stream's new snapshot (None: the stream has none),
        as of ``to_position``.

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
                .values(position=to_position, updated_at=self._clock())
            )
            if moved.rowcount != 1:
                raise LeaseLost(f"projection {name!r} is no longer at {from_position} for {owner}")
            whole = [item for item in projected if item.history_from is None]
            advanced = [item for item in projected if item.history_from is not None]
            await report_aggregates.record_changes(
                connection, whole, advanced, _version_rows, _collection_rows
            )
            await replace_invoices(connection, LIVE_TABLES, whole)
            await advance_invoices(connection, advanced)
            await write_fold_snapshots(connection, fold_snapshots or {}, to_position)

    async def fold_snapshots(
        self, stream_ids: Sequence[str], up_to_position: int
    ) -> dict[str, Mapping[str, Any]]:
        """The stored fold snapshots of these streams, where they reflect at most
        ``up_to_position`` (the checkpoint they were written with)."""
        if not stream_ids:
            return {}
        columns = invoice_fold_snapshots.c
        found: dict[str, Mapping[str, Any]] = {}
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            for chunk in _chunks(sorted(stream_ids), KEYS_PER_STATEMENT_MAX):
                rows = await connection.execute(
                    select(columns.stream_id, columns.snapshot).where(
                        columns.stream_id.in_(chunk), columns.position <= up_to_position
                    )
                )
                found.update({row.stream_id: row.snapshot for row in rows})
        return found

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
                await driver_connection.copy_records_to_table(
                    table.name,
                    records=_copy_records(table, rows, connection.dialect),
                    columns=[column.name for column in table.columns],
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
                .values(position=to_position, updated_at=self._clock())
            )
            if moved.rowcount != 1:
                raise LeaseLost(f"projection {name!r} lease lost during the rebuild")
            await _empty(connection, _tables(LIVE_TABLES))
            for live, rebuilt in zip(_tables(LIVE_TABLES), _tables(REBUILD_TABLES), strict=True):
                await _copy_table(connection, live, rebuilt)
            await _empty(connection, _tables(REBUILD_TABLES))
            # Snapshots describe streams as of older positions: the projector folds each
            # stream whole the next time it is touched, and keeps a snapshot from then on.
            await _empty(connection, [invoice_fold_snapshots])
            await _recount_totals(connection)
            await _empty(connection, report_aggregates.TABLES)
            await report_aggregates.recount(connection)


async def _empty(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    if connection.dialect.name == "postgresql":
        # Inside the swap's transaction: readers wait for its commit, then see the new rows.
        names = ", ".join(connection.dialect.identifier_preparer.quote(t.name) for t in tables)
        await connection.execute(text(f"TRUNCATE {names}"))
        return
    for table in tables:
        await connection.execute(delete(table))


async def _copy_table(connection: AsyncConnection, live: Table, rebuilt: Table) -> None:
    """Every rebuilt row into its live table. On PostgreSQL through the driver, with a bound of
    its own: this copies the whole read model, which can outlast the per-statement bound every
    other statement is held to (a loaded server took over 30 s for 1.4 M events' rows)."""
    statement = insert(live).from_select(list(rebuilt.c), select(rebuilt))
    if connection.dialect.name != "postgresql":
        await connection.execute(statement)
        return
    driver_connection = (await connection.get_raw_connection()).driver_connection
    assert driver_connection is not None
    await driver_connection.execute(
        str(statement.compile(dialect=connection.dialect)), timeout=SWAP_COPY_SECONDS_MAX
    )


def _tables(tables: ReadModelTables) -> tuple[Table, Table, Table]:
    return tables.invoices, tables.versions, tables.collections


async def replace_invoices(
    connection: AsyncConnection, tables: ReadModelTables, projected: Sequence[ProjectedInvoice]
) -> None:
    """Replace every row of the invoice numbers projected, in every organization.

    A stream is re-projected whole, so the invoices it yields now are all there are: a row
    from an earlier grouping of the same stream (say, its facts' organization unknown until
    one named it) must go too.
    """
    if not projected:
        return
    numbers = sorted({item.state.invoice_number for item in projected})
    replaced = (
        await connection.execute(
            delete(tables.invoices)
            .where(tables.invoices.c.invoice_number.in_(numbers))
            .returning(*_totals_columns(tables.invoices))
        )
    ).all()
    keys = [(row.organization_id, row.invoice_number) for row in replaced]
    for table in (tables.versions, tables.collections):
        await delete_keyed(connection, table, ("organization_id", "invoice_number"), keys)
    await insert_invoices(connection, tables, projected)
    if tables is LIVE_TABLES:
        deltas = _totals_deltas(replaced, [_invoice_row(item) for item in projected])
        await _add_to_totals(connection, deltas)


async def advance_invoices(
    connection: AsyncConnection, projected: Sequence[ProjectedInvoice]
) -> None:
    """Write invoices folded onto their snapshots: their invoice row, the state rows from
    ``history_from`` on and the collections after ``collections_kept``. Their identity is
    unchanged (a fact that would regroup a stream is folded with the whole stream)."""
    if not projected:
        return
    keys = [(item.state.organization_id, item.state.invoice_number) for item in projected]
    replaced = await delete_keyed(
        connection, invoices, ("organization_id", "invoice_number"), keys,
        returning=_totals_columns(invoices),
    )  # fmt: skip
    versions_from = [(*key, item.history_from) for key, item in zip(keys, projected, strict=True)]
    # Folding onto a snapshot only adds later states, so the one row at or after
    # history_from is the row of the snapshot's last state.
    await delete_keyed(
        connection, invoice_versions, ("organization_id", "invoice_number", "valid_from"),
        versions_from,
    )  # fmt: skip
    stale = [
        (*key, sequence)
        for key, item in zip(keys, projected, strict=True)
        for sequence in range(item.collections_kept + 1, item.collections_before + 1)
    ]
    await delete_keyed(
        connection, invoice_collections, ("organization_id", "invoice_number", "sequence"), stale
    )
    rows = [_invoice_row(item) for item in projected]
    await connection.execute(insert(invoices), rows)
    versions = [row for item in projected for row in _version_rows(item)]
    if versions:
        await connection.execute(insert(invoice_versions), versions)
    collections = [row for item in projected for row in _collection_rows(item)]
    if collections:
        await connection.execute(insert(invoice_collections), collections)
    await _add_to_totals(connection, _totals_deltas(replaced, rows))


async def write_fold_snapshots(
    connection: AsyncConnection,
    snapshots: Mapping[str, Mapping[str, Any] | None],
    position: int,
) -> None:
    """Each stream's snapshot as of ``position``; a stream without one loses its old one."""
    columns = invoice_fold_snapshots.c
    gone = sorted(stream for stream, snapshot in snapshots.items() if snapshot is None)
    for chunk in _chunks(gone, KEYS_PER_STATEMENT_MAX):
        await connection.execute(delete(invoice_fold_snapshots).where(columns.stream_id.in_(chunk)))
    rows = [
        {"stream_id": stream, "position": position, "snapshot": snapshot}
        for stream, snapshot in sorted(snapshots.items())
        if snapshot is not None
    ]
    if not rows:
        return
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    upsert = dialect_insert(invoice_fold_snapshots)
    await connection.execute(
        upsert.on_conflict_do_update(
            index_elements=[columns.stream_id],
            set_={"position": upsert.excluded.position, "snapshot": upsert.excluded.snapshot},
        ),
        rows,
    )


# The PostgreSQL array type of each key column deleted by, for ``unnest``.
_ARRAY_TYPES = {"organization_id": "text[]", "invoice_number": "text[]",
                "valid_from": "timestamptz[]", "sequence": "integer[]"}  # fmt: skip


async def delete_keyed(
    connection: AsyncConnection,
    table: Table,
    key_columns: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
    *,
    returning: Sequence[Any] = (),
) -> list[Any]:
    """Delete the rows whose primary-key prefix ``key_columns`` is one of ``keys``.

    On PostgreSQL the keys go as one array per column, joined with ``unnest``: an index
    lookup per key in one statement. A row-value ``IN`` list of a thousand keys is planned as a
    filter over a scan of the whole table, whose cost grows with the read model.
    """
    if not keys:
        return []
    if connection.dialect.name != "postgresql":
        identity = tuple_(*(table.c[name] for name in key_columns))
        found: list[Any] = []
        for chunk in _chunks(keys, KEYS_PER_STATEMENT_MAX):
            statement = delete(table).where(identity.in_(chunk))
            if returning:
                found += (await connection.execute(statement.returning(*returning))).all()
            else:
                await connection.execute(statement)
        return found
    quote = connection.dialect.identifier_preparer.quote
    arrays = ", ".join(
        f"CAST(:{name} AS {_ARRAY_TYPES[name]})" for name in key_columns
    )
    matched = " AND ".join(
        f"{quote(table.name)}.{quote(name)} = keyed.{quote(name)}" for name in key_columns
    )
    columns = ", ".join(quote(name) for name in key_columns)
    keyed_delete = text(
        f"DELETE FROM {quote(table.name)} USING unnest({arrays}) AS keyed({columns})"
        f" WHERE {matched}"
        + (
            " RETURNING " + ", ".join(f"{quote(table.name)}.{quote(c.name)}" for c in returning)
            if returning
            else ""
        )
    )
    parameters = {name: [key[index] for key in keys] for index, name in enumerate(key_columns)}
    if not returning:
        await connection.execute(keyed_delete, parameters)
        return []
    result = await connection.execute(keyed_delete.columns(*returning), parameters)
    return list(result.all())


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


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
    columns = table.c
    return [
        columns.organization_id, columns.invoice_number, columns.status, columns.currency,
        columns.total_amount, columns.balance_amount, columns.total_provisional,
        columns.balance_provisional,
    ]  # fmt: skip


TotalsKey = tuple[str, str, str]  # organization, status, currency ("" when unknown)


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

    @property
    def below_zero(self) -> bool:
        amounts = (self.total, self.balance, self.provisional_total, self.provisional_balance)
        return self.invoices < 0 or min(amounts) < 0


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


async def _add_to_totals(
    connection: AsyncConnection, deltas: dict[TotalsKey, StatusTotals]
) -> None:
    """Add in Python, exactly: SQLite's arithmetic on the stored text would be floating point.

    Reading and then writing is safe: the totals' one writer moved the checkpoint row at the
    start of this transaction, which serialises writers on both engines.
    """
    changed = {key: delta for key, delta in deltas.items() if delta != StatusTotals()}
    if not changed:
        return
    columns = invoice_totals.c
    identity = tuple_(columns.organization_id, columns.status, columns.currency)
    current = {
        (row.organization_id, row.status, row.currency): _status_totals(row)
        for row in await connection.execute(
            select(invoice_totals).where(identity.in_(list(changed)))
        )
    }
    rows = []
    for key, delta in sorted(changed.items()):
        after = current.get(key, StatusTotals()) + delta
        if after.below_zero:
            raise AssertionError(f"the invoice totals of {key} would fall below zero: {after}")
        if after.invoices:
            rows.append(_totals_row(key, after))
    # One statement per table for the batch: the changed rows go, their new figures come.
    stale = sorted(key for key in changed if key in current)
    if stale:
        await connection.execute(delete(invoice_totals).where(identity.in_(stale)))
    if rows:
        await connection.execute(insert(invoice_totals), rows)


def _status_totals(row: Any) -> StatusTotals:
    return StatusTotals(
        row.invoices, row.total_amount, row.balance_amount,
        row.invoices_without_total, row.invoices_without_balance,
        row.provisional_total_amount, row.provisional_balance_amount,
    )  # fmt: skip


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


async def _recount_totals(connection: AsyncConnection) -> None:
    """Totals from scratch, from the live invoice rows (after a rebuild's swap)."""
    await _empty(connection, [invoice_totals])
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


def _copy_records(
    table: Table, rows: list[dict[str, Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """Rows as COPY records, each value bound as its column's type binds it: COPY bypasses
    SQLAlchemy's types, which check amounts and instants, and serialise JSON documents.

    Only the columns with a binder are visited a second time: a rebuild makes a record of
    every row of the read model, and a call per value costs as much as the fold."""
    names = [column.name for column in table.columns]
    binders: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(table.columns):
        if column.name == "payments":
            binders.append((index, json.dumps))
        elif isinstance(column.type, TypeDecorator):
            binders.append((index, partial(column.type.process_bind_param, dialect=dialect)))
    records = []
    for row in rows:
        values = [row[name] for name in names]
        for index, bind in binders:
            value = values[index]
            if value is not None:  # every binder keeps NULL as NULL
                values[index] = bind(value)
        records.append(tuple(values))
    return records


def _invoice_row(item: ProjectedInvoice) -> dict[str, Any]:
    state = item.state
    return {
        "organization_id": state.organization_id,
        "invoice_number": state.invoice_number,
        "status": state.status.value if state.status else None,
        "currency": state.currency,
        "total_amount": state.total_amount,
        "balance_amount": state.balance_amount,
        "total_provisional": state.total_provisional,
        "balance_provisional": state.balance_provisional,
        "due_date": state.due_date,
        "customer_name": state.customer_name,
        "customer_email": state.customer_email,
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


def _version_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
    rows = []
    for index, state in enumerate(item.history):
        following = item.history[index + 1] if index + 1 < len(item.history) else None
        rows.append(
            {
                "organization_id": item.state.organization_id,
                "invoice_number": state.invoice_number,
                "valid_from": state.last_event_at,
                "valid_to": following.last_event_at if following else None,
                "status": state.status.value if state.status else None,
                "currency": state.currency,
                "total_amount": state.total_amount,
                "balance_amount": state.balance_amount,
                "total_provisional": state.total_provisional,
                "balance_provisional": state.balance_provisional,
                "due_date": state.due_date,
            }
        )
    return rows


def _collection_rows(item: ProjectedInvoice) -> list[dict[str, Any]]:
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
