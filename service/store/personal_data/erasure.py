"""Erasing a payer: their facts' personal data made unreadable for good, and every clear copy
of it removed from the database, while amounts, statuses and the audit trail stay.

In order, each step safe to run again if a run stops half-way:
1. the payer's facts still recorded in clear are sealed under their data key;
2. the bodies of the deliveries that carried them (and of any delivery whose body names the
   payer's email or a name their facts stated) are redacted in the inbox: the body is gone,
   its size, headers, outcome and ``body_redacted_at`` stay;
3. the payer's data key is deleted (crypto-shredding): what was sealed under it cannot be
   read by anyone, rebuilds and backups taken later included;
4. one ``PersonalDataErased`` fact per invoice that named the payer is appended (the payer's
   keyed hash and the reason, never the email), so the projector refolds those invoices,
   whose customer then reads as erased, and the audit trail shows who erased and why.
A fact arriving for the payer after step 3 is sealed under a new data key: the payer then
reappears from new facts only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.domain.events import EventSource, InvoiceEventType, NewEvent
from service.domain.identity import organization_named_by
from service.domain.payloads import PersonalDataErased, encode
from service.store.errors import unavailability_as_store_error
from service.store.events.base import EventStore
from service.store.personal_data.data_keys import PersonalDataKeyMissing, SqlDataKeys, delete_key
from service.store.personal_data.recorded_facts import seal_recorded_facts
from service.store.personal_data.sealing import (
    SealedCustomer,
    UnreadableSeal,
    normalised_email,
    normalised_name,
    open_customer,
)
from service.store.schema import events, inbox

log = structlog.get_logger("service.store.personal_data")

ERASURE_KEY_PREFIX = "operator:erasure:"
IDEMPOTENCY_KEY_LENGTH_MAX = 300
REASON_LENGTH_MAX = 500
FACTS_PER_APPEND_MAX = 500
INBOX_PAGE_SIZE = 500
IDS_PER_UPDATE_MAX = 500


class ErasureRefused(Exception):
    """An erasure that cannot be done as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Erasure:
    payer: str  # the payer's keyed hash
    facts: int  # facts that named the payer
    invoices: int  # erasure facts recorded (one per invoice that named the payer)
    deliveries_redacted: int
    # Encrypted bodies no configured key opens: whether they name the payer is unknown.
    encrypted_bodies_unsearched: int
    key_deleted: bool
    positions: tuple[int, ...]  # of the erasure facts


@dataclass(frozen=True, slots=True)
class _PayerFact:
    position: int
    stream_id: str
    organization_id: str | None
    notification_id: str | None
    customer: dict[str, Any] | None  # opened, while the key still exists


async def erase_payer(
    engine: AsyncEngine,
    data_keys: SqlDataKeys,
    store: EventStore,
    *,
    email: str | None,
    name: str | None,
    reason: str,
    recorded_by: str,
    clear_body: Callable[[bytes], bytes | None] = lambda body: body,
) -> Erasure:
    """``clear_body``: what a stored delivery body says in clear (an encrypted one decrypted
    with the keys configured now; None when it cannot be), for the search of the bodies that
    name the payer."""
    master = data_keys.master
    if master is None:
        raise PersonalDataKeyMissing("erasing a payer")
    reason = reason.strip()
    if not reason or len(reason) > REASON_LENGTH_MAX:
        raise ErasureRefused(f"a reason of 1 to {REASON_LENGTH_MAX} characters is needed")
    if (email is None) == (name is None):
        raise ErasureRefused("name the payer by their email or, for facts without one, name")
    payer = master.payer(None, email) if email is not None else master.payer(name, None)
    if payer is None:
        raise ErasureRefused("the email or name given is empty")
    await seal_recorded_facts(engine, master, only_payer=payer)
    facts = await _payer_facts(engine, data_keys, payer)
    needles = _needles(email, name, facts)
    async with unavailability_as_store_error(), engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            # Freed pages are zeroed, so a redacted body or deleted key leaves no copy in them.
            await connection.execute(text("PRAGMA secure_delete = ON"))
        redacted, unsearched = await _redact_deliveries(connection, facts, needles, clear_body)
        deleted = await delete_key(connection, payer)
    positions = await _record_erasure(store, payer, facts, reason, recorded_by)
    await _reclaim_space(engine)
    invoices = len({(fact.stream_id, fact.organization_id) for fact in facts})
    return Erasure(payer, len(facts), invoices, redacted, unsearched, deleted, positions)


async def _payer_facts(engine: AsyncEngine, data_keys: SqlDataKeys, payer: str) -> list[_PayerFact]:
    # The payer's hash is read from the JSON on both engines; an erasure scans the events
    # once (no index: erasures are rare, and an index would cost every append).
    query = (
        select(events.c.position, events.c.stream_id, events.c.data)
        .where(events.c.data[("customer", "payer")].as_string() == payer)
        .order_by(events.c.position)
    )
    async with unavailability_as_store_error(), engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    keys = await data_keys.for_opening([payer])
    found = []
    for row in rows:
        sealed = SealedCustomer.found_in(row.data.get("customer"))
        customer = None
        if sealed is not None and payer in keys and sealed.sealed_under(keys[payer]):
            try:
                customer = open_customer(sealed, keys[payer])
            except UnreadableSeal:
                customer = None
        notification = row.data.get("notification") or {}
        found.append(
            _PayerFact(
                row.position,
                row.stream_id,
                organization_named_by(row.data),
                notification.get("id") if isinstance(notification, dict) else None,
                customer,
            )
        )
    return found


def _needles(email: str | None, name: str | None, facts: Sequence[_PayerFact]) -> set[bytes]:
    """What a delivery body naming the payer holds, lower-cased: each email and name as a
    whole JSON string (quotes included, so "Al" never matches "Alice"), written as is and
    with JSON's escapes (a name with accents may arrive as \\u00e9)."""
    texts = {normalised_email(email)} if email else set()
    if name:
        texts.add(normalised_name(name))
    for fact in facts:
        for value in (fact.customer or {}).values():
            if isinstance(value, str) and value.strip():
                texts.add(value.lower())
    return {
        json.dumps(value, ensure_ascii=ascii_only).lower().encode()
        for value in texts
        for ascii_only in (True, False)
    }


async def _redact_deliveries(
    connection: AsyncConnection,
    facts: Sequence[_PayerFact],
    needles: set[bytes],
    clear_body: Callable[[bytes], bytes | None],
) -> tuple[int, int]:
    """How many bodies were redacted, and how many encrypted ones could not be searched."""
    positions = {fact.position for fact in facts}
    notifications = {fact.notification_id for fact in facts if fact.notification_id}
    chosen: list[int] = []
    unsearched = 0
    last_id = 0
    while True:
        page = (
            await connection.execute(
                select(inbox.c.id, inbox.c.event_position, inbox.c.notification_id, inbox.c.body)
                .where(inbox.c.id > last_id, inbox.c.body.is_not(None))
                .order_by(inbox.c.id)
                .limit(INBOX_PAGE_SIZE)
            )
        ).all()
        if not page:
            break
        last_id = page[-1].id
        for row in page:
            if row.event_position in positions or row.notification_id in notifications:
                chosen.append(row.id)
                continue
            # An encrypted body (a dead letter, an ignored event type) names the payer only
            # once decrypted: the ledger's own keys would bring them back on a replay.
            clear = clear_body(bytes(row.body))
            if clear is None:
                unsearched += 1
            elif any(needle in clear.lower() for needle in needles):
                chosen.append(row.id)
    now = datetime.now(UTC)
    for start in range(0, len(chosen), IDS_PER_UPDATE_MAX):
        await connection.execute(
            update(inbox)
            .where(inbox.c.id.in_(chosen[start : start + IDS_PER_UPDATE_MAX]))
            .values(body=None, body_redacted_at=now)
        )
    return len(chosen), unsearched


async def _record_erasure(
    store: EventStore,
    payer: str,
    facts: Iterable[_PayerFact],
    reason: str,
    recorded_by: str,
) -> tuple[int, ...]:
    erasure_id = uuid.uuid4().hex[:16]
    now = datetime.now(UTC)
    invoices = sorted(
        {(fact.stream_id, fact.organization_id) for fact in facts},
        key=lambda invoice: (invoice[0], invoice[1] or ""),
    )
    new_events = [
        NewEvent(
            stream_id=stream_id,
            type=InvoiceEventType.PERSONAL_DATA_ERASED,
            occurred_at=now,
            source=EventSource.OPERATOR,
            idempotency_key=_erasure_key(erasure_id, stream_id, organization_id),
            data=encode(PersonalDataErased(organization_id, stream_id, payer, reason, recorded_by)),
        )
        for stream_id, organization_id in invoices
    ]
    positions: list[int] = []
    for start in range(0, len(new_events), FACTS_PER_APPEND_MAX):
        results = await store.append(new_events[start : start + FACTS_PER_APPEND_MAX])
        positions += [result.position for result in results]
    return tuple(positions)


def _erasure_key(erasure_id: str, stream_id: str, organization_id: str | None) -> str:
    key = f"{ERASURE_KEY_PREFIX}{erasure_id}:{organization_id or '-'}:{stream_id}"
    if len(key) > IDEMPOTENCY_KEY_LENGTH_MAX:
        key = f"{ERASURE_KEY_PREFIX}{erasure_id}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


async def _reclaim_space(engine: AsyncEngine) -> None:
    """Leave no old copy of a redacted body or deleted key where the engine keeps them:
    SQLite's write-ahead log is checkpointed and truncated; PostgreSQL's old row versions are
    vacuumed (ownership is needed; without it PostgreSQL warns and autovacuum does it later)."""
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # On the driver's connection: SQLAlchemy's would open a transaction first,
                # inside which SQLite refuses to checkpoint.
                driver = (await connection.get_raw_connection()).driver_connection
                assert driver is not None, "a checked-out connection has its driver's"
                await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM personal_data_keys, inbox"))
    except (DBAPIError, sqlite3.Error) as error:
        # Best effort: a reader in another process holds the log (SQLite), or the role does
        # not own the tables (PostgreSQL); the engine reclaims the space later on its own.
        log.warning("erasure.space_not_reclaimed", reason=type(error).__name__)
