"""Console sessions in the database, so that every replica knows every sign-in and sign-out.

A session id is 32 random bytes (URL-safe base64) handed to the browser once; the table keeps
only its SHA-256 (``schema.console_sessions``), so reading the table opens no session. Times
are the database's clock, one clock for every replica. Expired rows are deleted in bounded
batches (``prune_expired``), by each sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.database import database_now
from service.store.errors import unavailability_as_store_error
from service.store.schema import console_sessions

SESSION_ID_BYTES = 32
# A session id longer than any this module makes is not looked up.
SESSION_ID_LENGTH_MAX = 64
# Expired rows deleted per prune: a sign-in adds one row and removes up to this many.
PRUNE_ROWS_MAX = 100


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    caller_name: str  # token_name(token) of the token it was opened with
    scope: str
    created_at: datetime
    expires_at: datetime


class SqlConsoleSessions:
    def __init__(self, engine: AsyncEngine, lifetime_seconds: int) -> None:
        assert lifetime_seconds > 0
        self._engine = engine
        self._lifetime = timedelta(seconds=lifetime_seconds)

    @property
    def lifetime_seconds(self) -> int:
        return int(self._lifetime.total_seconds())

    async def create(self, caller_name: str, scope: str) -> str:
        """A new session for the caller; its id, which only the browser keeps from now on."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            now = await database_now(connection)
            await connection.execute(
                insert(console_sessions).values(
                    id_digest=_digest(session_id),
                    caller_name=caller_name,
                    scope=scope,
                    created_at=now,
                    expires_at=now + self._lifetime,
                )
            )
        return session_id

    async def find_valid(self, session_id: str) -> ConsoleSession | None:
        """The session, if it exists, has not expired and was not signed out of."""
        if not session_id or len(session_id) > SESSION_ID_LENGTH_MAX:
            return None
        row = console_sessions.c
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            now = await database_now(connection)
            found = (
                await connection.execute(
                    select(row.caller_name, row.scope, row.created_at, row.expires_at).where(
                        row.id_digest == _digest(session_id),
                        row.revoked_at.is_(None),
                        row.expires_at > now,
                    )
                )
            ).first()
        if found is None:
            return None
        return ConsoleSession(found.caller_name, found.scope, found.created_at, found.expires_at)

    async def revoke(self, session_id: str) -> bool:
        """Sign out: the session stops working on every replica. False if it had already
        ended (or never existed)."""
        if not session_id or len(session_id) > SESSION_ID_LENGTH_MAX:
            return False
        row = console_sessions.c
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            now = await database_now(connection)
            revoked = await connection.execute(
                update(console_sessions)
                .where(
                    row.id_digest == _digest(session_id),
                    row.revoked_at.is_(None),
                    row.expires_at > now,
                )
                .values(revoked_at=now)
            )
        return bool(revoked.rowcount)

    async def prune_expired(self, rows_max: int = PRUNE_ROWS_MAX) -> int:
        """Delete up to ``rows_max`` expired sessions, oldest first; how many were."""
        row = console_sessions.c
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            now = await database_now(connection)
            oldest = (
                select(row.id_digest)
                .where(row.expires_at <= now)
                .order_by(row.expires_at)
                .limit(rows_max)
            )
            deleted = await connection.execute(
                delete(console_sessions).where(row.id_digest.in_(oldest))
            )
        return int(deleted.rowcount)


def _digest(session_id: str) -> str:
    # The id is 256 random bits: a fast hash is enough, nothing can be guessed from it.
    return hashlib.sha256(session_id.encode()).hexdigest()
