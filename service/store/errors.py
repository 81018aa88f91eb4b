"""Store failures, named for what the caller should do about them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import exc

# SQLSTATE classes meaning "the server is not there for you right now": connection
# exception (08), insufficient resources such as too many connections (53), operator
# intervention such as 57P03 "cannot connect now" while starting up or shutting down (57);
# and "not as configured": a role or password refused (28), a database that does not exist
# (3D). Those are fixed outside the service, which then recovers by itself: a retry helps.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "28", "3D")
# How much of the server's own message a problem description repeats.
PROBLEM_LENGTH_MAX = 200
# Drivers wrap driver errors which wrap socket errors; a chain longer than this is not one.
CAUSE_CHAIN_LENGTH_MAX = 8


class StoreUnavailable(Exception):
    """The database cannot be reached or is not answering; the caller should try again later."""


def is_unavailability(error: BaseException) -> bool:
    """Whether ``error``, or what caused it, says the database is away rather than the request
    is wrong: a caller then answers 503 and the sender retries."""
    for link in _cause_chain(error):
        if isinstance(link, exc.IntegrityError):
            return False  # a constraint the request broke: retrying cannot help
        if _is_unavailability_itself(link):
            return True
    return False


def _is_unavailability_itself(error: BaseException) -> bool:
    if isinstance(error, StoreUnavailable | exc.OperationalError | exc.InterfaceError):
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    # SQLAlchemy's asyncpg adapter maps, for example, 57P03 to InternalError: the SQLSTATE,
    # not the class, says whether the server is unavailable.
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    return isinstance(
        error,
        exc.TimeoutError  # the pool had no connection to give within its timeout
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | ConnectionError
        | OSError
        | asyncio.TimeoutError,
    )


def _cause_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(chain) < CAUSE_CHAIN_LENGTH_MAX and link not in chain:
        chain.append(link)
        original = getattr(link, "orig", None)
        link = original if isinstance(original, BaseException) else link.__cause__
    return chain


def is_sqlite_lock_timeout(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is SQLite saying another connection held its
    lock for longer than this one would wait."""
    return any(
        "database is locked" in str(link) or "database table is locked" in str(link)
        for link in _cause_chain(error)
    )


def unavailability_reason(error: BaseException) -> str:
    """One line saying why the database is unavailable, for an operator: the server's own
    message for a connection-level refusal (``database "x" does not exist``, ``password
    authentication failed for user "y"``), "locked" for SQLite's lock, else the error's type.
    Never a statement or its values: only messages that come before any statement is run."""
    if is_sqlite_lock_timeout(error):
        return "the SQLite database is locked by another process"
    chain = _cause_chain(error)
    for link in chain:
        sqlstate = getattr(link, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
            message = str(getattr(link, "message", None) or link).splitlines()[0]
            return message[:PROBLEM_LENGTH_MAX]
        if "unable to open database file" in str(link):
            return "the SQLite database file cannot be opened (does its folder exist?)"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused (is the server running, on that host and port?)"
        if isinstance(link, OSError) and link.strerror:
            return link.strerror[:PROBLEM_LENGTH_MAX]
    root = chain[-1] if chain else error
    return type(root).__name__


@asynccontextmanager
async def unavailability_as_store_error() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        if is_unavailability(error):
            raise StoreUnavailable(_unavailable_briefly(error)) from error
        raise


def _unavailable_briefly(error: BaseException) -> str:
    if is_sqlite_lock_timeout(error):
        # Not away: busy. Another connection (a serving process, a command beside it) held
        # SQLite's write lock past this one's wait (service/store/database.py).
        return "database locked: another process held SQLite's write lock past the wait"
    return f"database unavailable: {type(error).__name__}"
