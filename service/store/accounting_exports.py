"""Accounting exports, recorded so that finance posts every payment exactly once.

An export of the payments journal holds, for its period, every collection of known amount and
currency that no earlier export posted, and, whatever its period, a *reversal* of every line
posted earlier that no longer stands (its amount, currency or day changed, or the payment is
gone: an operator's correction or Cybersource's answer), followed by the payment as it stands
now when it falls in the period. A payment is named by its stable identity, (organization,
invoice number, collection sequence); what is posted of it is its latest line, unless that is
a reversal. Exported lines are never edited: both tables are append-only.

An export of the open invoices is the receivables at the end of its period, each invoice's
balance then; it is recorded the same way, to be downloaded again identically.

Creating an export reads and writes in one transaction; on PostgreSQL it holds an advisory
lock, so two exports made at once never post the same payment twice (SQLite serialises
writers itself). Lines name no person: the customer is read from the invoice when downloaded,
so a payer erased since shows as erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, literal, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.identity import OrganizationScope, scope_includes
from service.domain.status import OPEN_STATUSES
from service.store.accounting_lines import (
    PAYMENT,
    RECEIVABLE,
    REVERSAL,
    ExportLine,
    ExportRecord,
    content_digest,
    end_of_period,
    line_of,
    record_of,
    start_of_day,
    stored,
)
from service.store.errors import unavailability_as_store_error
from service.store.schema import (
    accounting_export_lines,
    accounting_exports,
    events,
    invoice_collections,
    invoice_versions,
    invoices,
    projection_checkpoints,
)
from service.store.views.leases import INVOICES_PROJECTION

# pg_advisory_xact_lock key held while an export is made (a constant of its own: appends use
# other keys, service.store.events.base).
EXPORT_LOCK_KEY = 0x4C45_4447_4558_5054 % (2**63)
EXPORTS_PAGE_SIZE_MAX = 500
IDENTITIES_PER_READ_MAX = 500
LINES_PER_EXPORT_MAX = 1_000_000
_COLLECTION_KEY = ("organization_id", "invoice_number", "sequence")


class ExportTooLarge(Exception):
    """An export would hold more lines than LINES_PER_EXPORT_MAX."""


class SqlAccountingExports:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        kind: str,
        period_from: date,
        period_to: date,
        created_by: str,
        now: datetime,
        *,
        merchant: str | None = None,
        organizations: OrganizationScope = None,
    ) -> ExportRecord:
        """``merchant``'s export holds the lines of ``organizations`` only (its own); a
        payment another merchant's export posted stays posted there."""
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": EXPORT_LOCK_KEY}
                )
            if kind == "payments":
                lines = await _payment_lines(connection, period_from, period_to)
            else:
                lines = await _receivable_lines(connection, period_to)
            if organizations is not None:
                kept = [
                    line for line in lines if scope_includes(organizations, line.organization_id)
                ]
                lines = [replace(line, line=number) for number, line in enumerate(kept, start=1)]
            if len(lines) > LINES_PER_EXPORT_MAX:
                raise ExportTooLarge
            record = ExportRecord(
                0,
                kind,
                period_from,
                period_to,
                now,
                created_by,
                content_digest(kind, period_from, period_to, lines),
                len(lines),
                merchant,
            )
            inserted = await connection.execute(
                insert(accounting_exports)
                .values(
                    kind=kind,
                    period_from=period_from,
                    period_to=period_to,
                    created_at=now,
                    created_by=created_by,
                    content_digest=record.content_digest,
                    line_count=record.line_count,
                    merchant=merchant,
                )
                .returning(accounting_exports.c.id)
            )
            export_id = int(inserted.scalar_one())
            if lines:
                await connection.execute(
                    insert(accounting_export_lines),
                    [{"export_id": export_id, **stored(line)} for line in lines],
                )
        return replace(record, export_id=export_id)

    async def exports(self, limit: int, before_id: int | None = None) -> list[ExportRecord]:
        """The newest exports first, at most ``limit``, with ids below ``before_id``."""
        query = select(accounting_exports).order_by(accounting_exports.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(accounting_exports.c.id < before_id)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return [record_of(row) for row in (await connection.execute(query)).all()]

    async def export(self, export_id: int) -> ExportRecord | None:
        query = select(accounting_exports).where(accounting_exports.c.id == export_id)
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else record_of(row)

    async def lines(self, export_id: int) -> list[ExportLine]:
        """An export's lines in order, each with its invoice's customer as the ledger knows
        it now."""
        stored = accounting_export_lines.c
        query = (
            select(
                accounting_export_lines,
                invoices.c.customer_name,
                invoices.c.customer_email,
                invoices.c.customer_erased,
            )
            .select_from(
                accounting_export_lines.outerjoin(
                    invoices,
                    and_(
                        invoices.c.organization_id == stored.organization_id,
                        invoices.c.invoice_number == stored.invoice_number,
                    ),
                )
            )
            .where(stored.export_id == export_id)
            .order_by(stored.line)
        )
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            replace(
                line_of(row),
                customer_name=None if row.customer_erased else row.customer_name,
                customer_email=None if row.customer_erased else row.customer_email,
                customer_erased=bool(row.customer_erased),
            )
            for row in rows
        ]


async def _payment_lines(
    connection: AsyncConnection, period_from: date, period_to: date
) -> list[ExportLine]:
    posted = await _posted(connection)
    collected = invoice_collections.c
    known = and_(collected.amount.is_not(None), collected.currency.is_not(None))
    in_period = and_(
        collected.collected_at >= start_of_day(period_from),
        collected.collected_at < end_of_period(period_to),
    )
    current = {
        line.identity: line for line in await _collections(connection, and_(known, in_period))
    }
    standing = {
        line.identity: line for line in await _collections(connection, known, sorted(posted))
    }
    reversals: list[ExportLine] = []
    for identity, line in sorted(posted.items()):
        now = standing.get(identity)
        if now is not None and now.posted == line.posted:
            current.pop(identity, None)  # posted already, as it stands
            continue
        source, position = (
            (now.source, now.position) if now else await _fact_of(connection, line.invoice_number)
        )
        reversals.append(replace(line, kind=REVERSAL, source=source, position=position))
    payments = sorted(current.values(), key=lambda line: (line.occurred_at, *line.identity))
    return [
        replace(line, line=number) for number, line in enumerate([*reversals, *payments], start=1)
    ]


async def _posted(connection: AsyncConnection) -> dict[tuple[str, str, int], ExportLine]:
    """Each payment's latest exported line, when that line posts it (not a reversal)."""
    stored = accounting_export_lines.c
    query = (
        select(accounting_export_lines)
        .where(stored.kind.in_([PAYMENT, REVERSAL]))
        .order_by(stored.export_id, stored.line)
    )
    latest: dict[tuple[str, str, int], ExportLine] = {}
    async with connection.stream(query) as rows:
        async for row in rows:
            line = line_of(row)
            latest[line.identity] = line
    return {identity: line for identity, line in latest.items() if line.kind == PAYMENT}


def _latest_fact(invoice_number: Any) -> tuple[Any, Any]:
    """The position and source of the latest fact recorded for an invoice number that the read
    model reflects (a correction is read in place of the fact it corrects, so the invoice's
    own last position would name the corrected fact, not the correction)."""
    checkpoint = (
        select(projection_checkpoints.c.position)
        .where(projection_checkpoints.c.name == INVOICES_PROJECTION)
        .scalar_subquery()
    )
    latest, fact = events.alias("latest"), events.alias("fact")
    position = (
        select(func.max(latest.c.position))
        .where(latest.c.stream_id == invoice_number, latest.c.position <= checkpoint)
        .scalar_subquery()
    )
    source = select(fact.c.source).where(fact.c.position == position).scalar_subquery()
    return position.label("fact_position"), source.label("fact_source")


def _collection_query() -> Any:
    collected = invoice_collections.c
    return select(
        collected.organization_id,
        collected.invoice_number,
        collected.sequence,
        collected.collected_at,
        collected.currency,
        collected.amount,
        collected.provisional,
        *_latest_fact(collected.invoice_number),
    )


async def _collections(
    connection: AsyncConnection,
    condition: ColumnElement[bool],
    identities: Sequence[tuple[str, str, int]] | None = None,
) -> list[ExportLine]:
    if identities is None:
        rows = list((await connection.execute(_collection_query().where(condition))).all())
    else:
        key = tuple_(*(invoice_collections.c[name] for name in _COLLECTION_KEY))
        rows = []
        for first in range(0, len(identities), IDENTITIES_PER_READ_MAX):
            chunk = identities[first : first + IDENTITIES_PER_READ_MAX]
            query = _collection_query().where(condition, key.in_(chunk))
            rows += (await connection.execute(query)).all()
    return [
        ExportLine(
            0,
            PAYMENT,
            row.organization_id,
            row.invoice_number,
            row.sequence,
            row.collected_at,
            None,
            row.currency,
            row.amount,
            row.provisional,
            row.fact_source or "",
            row.fact_position or 0,
        )
        for row in rows
    ]


async def _fact_of(connection: AsyncConnection, invoice_number: str) -> tuple[str, int]:
    """The source and position of the latest fact about an invoice number (the one that
    removed a payment)."""
    row = (await connection.execute(select(*_latest_fact(literal(invoice_number))))).one()
    return (row.fact_source or "", int(row.fact_position or 0))


async def _receivable_lines(connection: AsyncConnection, period_to: date) -> list[ExportLine]:
    """The invoices open at the end of ``period_to`` with a known balance, as they stood then."""
    versions = invoice_versions.c
    end = end_of_period(period_to)
    query = (
        select(
            versions.organization_id,
            versions.invoice_number,
            versions.currency,
            versions.balance_amount,
            versions.balance_provisional,
            versions.due_date,
            *_latest_fact(versions.invoice_number),
        )
        .select_from(invoice_versions)
        .where(
            versions.valid_from < end,
            or_(versions.valid_to.is_(None), versions.valid_to >= end),
            versions.status.in_([status.value for status in OPEN_STATUSES]),
            versions.currency.is_not(None),
            versions.balance_amount.is_not(None),
        )
        .order_by(versions.organization_id, versions.invoice_number)
    )
    rows = (await connection.execute(query)).all()
    return [
        ExportLine(
            number,
            RECEIVABLE,
            row.organization_id,
            row.invoice_number,
            0,
            None,
            row.due_date,
            row.currency,
            row.balance_amount,
            row.balance_provisional,
            row.fact_source or "",
            row.fact_position or 0,
        )
        for number, row in enumerate(rows, start=1)
    ]
