"""Structured JSON logs. Callers log identifiers and outcomes, never bodies, keys or payer data.

Exception messages are never logged: a driver's message can quote the statement's values
(asyncpg: "invalid input for query argument $3: 'Tanya Lee'"; PostgreSQL: "Key (email)=(…)
already exists"), and a validation error can quote the body. A logged exception keeps its
types, SQLSTATE and stack (files, lines, functions), which is what locates a fault.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Causes and contexts chain; a chain longer than this is cut rather than walked forever.
EXCEPTION_CHAIN_LENGTH_MAX = 8


def configure_logging(level: str) -> None:
    """Every line on stderr one JSON object: structlog's own, and the standard library's
    (uvicorn, Alembic, asyncio) rendered by the same processors.

    structlog's entries are written under the standard-library handler's lock, as whole lines:
    aiosqlite logs from its own thread, and two writers to one stream can otherwise put two
    entries on one line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                withhold_arguments_beside_exceptions,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                scrub_exception_info,
                structlog.processors.JSONRenderer(),
            ],
            pass_foreign_args=True,
        )
    )
    # force: replaces whatever handler an earlier configuration (or a library) installed.
    logging.basicConfig(handlers=[handler], level=level, force=True)
    # httpx logs every request line at INFO; the reconciler logs what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrub_exception_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=LineWriterFactory(handler),
        cache_logger_on_first_use=True,
    )


class LineWriter:
    """structlog's output: each rendered entry one line, written and flushed under the lock
    of the standard library's handler on the same stream. (Routing entries through the
    standard library's logging instead would order them too, at twice the CPU per line.)"""

    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self._handler = handler

    def msg(self, message: str) -> None:
        self._handler.acquire()
        try:
            self._handler.stream.write(message + "\n")
            self._handler.stream.flush()
        finally:
            self._handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = msg


class LineWriterFactory:
    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self._writer = LineWriter(handler)

    def __call__(self, *_names: Any) -> LineWriter:
        return self._writer


def withhold_arguments_beside_exceptions(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A standard-library record's message may itself quote an exception ("… %s", error):
    only its template is kept when an exception accompanies it."""
    arguments = event.pop("positional_args", None)
    record = event.get("_record")
    if arguments and event.get("exc_info") and isinstance(record, logging.LogRecord):
        event["event"] = f"{record.msg} (arguments withheld)"
    return event


def scrubbed_exception(error: BaseException) -> str:
    """A traceback naming exception types (and SQLSTATEs), never their messages."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain and len(chain) < EXCEPTION_CHAIN_LENGTH_MAX:
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    parts: list[str] = []
    for exception in reversed(chain):
        if parts:
            parts.append("\nThe above exception led to the following exception:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(exception.__traceback__)))
        parts.append(_exception_name(exception) + "\n")
    return "".join(parts).rstrip("\n")


def _exception_name(error: BaseException) -> str:
    kind = type(error)
    name = f"{kind.__module__}.{kind.__qualname__}"
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return f"{name} (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else name


def scrub_exception_info(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``exc_info`` becomes a scrubbed ``exception`` field."""
    exc_info = event.pop("exc_info", None)
    error = _exception_of(exc_info)
    if error is not None:
        event["exception"] = scrubbed_exception(error)
    return event


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if exc_info is True:
        return sys.exc_info()[1]
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    return None
