"""Store failures, named for what the caller should do about them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc


class StoreUnavailable(Exception):
    """The database cannot be reached or is not answering; the caller should try again later."""


def is_unavailability(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and not isinstance(error, exc.IntegrityError):
        return isinstance(error, exc.OperationalError | exc.InterfaceError) or bool(
            error.connection_invalidated
        )
    return isinstance(error, exc.TimeoutError | OSError | asyncio.TimeoutError)


@asynccontextmanager
async def unavailability_as_store_error() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        if is_unavailability(error):
            raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        raise
