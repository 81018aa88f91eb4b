"""Structured JSON logs. Callers log identifiers and outcomes, never bodies, keys or payer data.

Exception messages are never logged: a driver's message can quote the statement's values
(asyncpg: "invalid input for query argument $3: 'Tanya Lee'"; PostgreSQL: "Key (email)=(…)
already exists"), and a validation error can quote the body. A logged exception keeps its
types, SQLSTATE and stack (files, lines, functions), which is what locates a fault.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import MutableMapping
from datetime import UTC, datetime
from itertools import islice
from json.encoder import encode_basestring_ascii
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
        processors=_ServiceChain(
            [
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                scrub_exception_info,
                structlog.processors.JSONRenderer(),
            ]
        ),
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


class _ServiceChain(list[Any]):
    """The processors ``configure_logging`` installs, recognisable as such by ``PlainLines``."""


class PlainLines:
    """Info entries whose fields are plain values (text, whole numbers, finite decimals),
    rendered and written as structlog's chain from ``configure_logging`` would write them,
    byte for byte, without running it: one entry is written on every request, and the chain
    (its calls, and ``json.dumps``, which builds an encoder per entry) more than doubled the
    line's cost.

    The entry is what the chain makes of it: the fields, the event, the context variables
    bound to structlog (``merge_contextvars``: the request id), then level and timestamp; an
    entry with anything else (an exception, a field named as one the chain adds, a value that
    is not plain) goes through the chain itself."""

    def __init__(self, logger: Any, writer: LineWriter) -> None:
        self._logger = logger
        self._writer = writer
        # The current second's ISO text, replaced whole (so a reader never sees half of it).
        self._second: tuple[int, str] = (-1, "")

    @classmethod
    def of(cls, logger: Any) -> PlainLines | None:
        """For a structlog logger, without bound values, whose info entries take
        ``configure_logging``'s chain to a ``LineWriter``; None when they are dropped (the level
        is above info) or structlog is configured otherwise (a console, a test's capture)."""
        bound = logger.bind()  # the logger structlog's proxy itself would use
        processors = getattr(bound, "_processors", None)
        writer = getattr(bound, "_logger", None)
        is_enabled_for = getattr(bound, "is_enabled_for", None)
        if (
            isinstance(processors, _ServiceChain)
            and isinstance(writer, LineWriter)
            and is_enabled_for is not None
            and is_enabled_for(logging.INFO)
            and not getattr(bound, "_context", None)
        ):
            return cls(bound, writer)
        return None

    def info(self, event: str, **fields: Any) -> None:
        given = len(fields)
        entry = fields
        entry["event"] = event
        structlog.contextvars.merge_contextvars(None, "info", entry)
        members = []
        for name, value in entry.items():
            # As json.dumps renders them; anything else is left to the chain.
            kind = type(value)
            if kind is str:
                text = encode_basestring_ascii(value)
            elif kind is int or (kind is float and value - value == 0):  # not NaN, nor ±inf
                text = repr(value)
            else:
                break
            members.append(f"{encode_basestring_ascii(name)}: {text}")
        if len(members) < len(entry) or not _ADDED_BY_THE_CHAIN.isdisjoint(entry):
            # The chain is given what the caller gave: the fields, before the event.
            self._logger.info(event, **dict(islice(entry.items(), given)))
            return
        members.append(f'"level": "info", "timestamp": "{self.timestamp_at(time.time_ns())}"')
        self._writer.msg("{" + ", ".join(members) + "}")

    def timestamp_at(self, nanoseconds: int) -> str:
        """TimeStamper(fmt="iso", utc=True)'s text for ``time.time_ns()``, the clock
        ``datetime.now`` reads (and floors to microseconds): ``datetime.now(UTC).isoformat()``
        with ``Z`` for ``+00:00``, its seconds rendered once a second, as ``isoformat`` takes
        longer than the rest of the line."""
        seconds, remainder = divmod(nanoseconds, 1_000_000_000)
        second, second_text = self._second
        if second != seconds:
            second_text = datetime.fromtimestamp(seconds, UTC).isoformat().removesuffix("+00:00")
            self._second = (seconds, second_text)
        microseconds = remainder // 1000
        return f"{second_text}.{microseconds:06d}Z" if microseconds else f"{second_text}Z"


# Fields the chain adds or replaces: an entry naming one is left to the chain.
_ADDED_BY_THE_CHAIN = frozenset({"level", "timestamp", "exc_info", "exception"})


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
