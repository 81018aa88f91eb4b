"""The standard library's log records come out as the service's JSON lines, scrubbed the same."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from service.logs import PlainLines, configure_logging


@pytest.fixture
def json_logging() -> Iterator[None]:
    """Restores the logging configuration the test's own ``configure_logging`` replaces."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_a_standard_library_record_is_one_json_line_naming_its_logger(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")  # here, so that it writes to the stderr capsys captures
    logging.getLogger("alembic.runtime.migration").info("Running upgrade %s -> %s", "0004", "0007")
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["event"] == "Running upgrade 0004 -> 0007"
    assert (entry["logger"], entry["level"]) == ("alembic.runtime.migration", "info")
    assert entry["timestamp"].endswith("Z")


def test_an_exceptions_message_and_the_records_arguments_are_withheld(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")  # here, so that it writes to the stderr capsys captures
    message = "invalid input for query argument $3: 'Tanya Lee'"
    try:
        raise ValueError(message)  # the traceback quotes this line, not the message
    except ValueError as error:
        logging.getLogger("uvicorn.error").error(
            "Exception in ASGI application: %s", error, exc_info=True
        )
    output = capsys.readouterr().err
    assert "Tanya Lee" not in output
    [line] = output.splitlines()
    entry = json.loads(line)
    assert entry["event"] == "Exception in ASGI application: %s (arguments withheld)"
    assert entry["exception"].endswith("builtins.ValueError")


def test_lines_from_structlog_and_the_standard_library_on_two_threads_never_share_a_line(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """aiosqlite logs from its own thread through the standard library while the event loop
    logs through structlog: both must write whole lines under one lock."""
    configure_logging("DEBUG")
    lines_each = 2_000
    library = logging.getLogger("aiosqlite")

    def log_from_the_library() -> None:
        for number in range(lines_each):
            library.debug("operation %s completed", number)

    thread = threading.Thread(target=log_from_the_library)
    thread.start()
    service_log = structlog.get_logger()
    for number in range(lines_each):
        service_log.info("projector.leadership", number=number)
    thread.join()
    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]  # raises on a line holding two entries
    assert len(entries) == 2 * lines_each
    assert sum(entry["event"] == "projector.leadership" for entry in entries) == lines_each


def _timestamps_blanked(lines: list[str]) -> list[str]:
    stamps = [json.loads(line)["timestamp"] for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", s) for s in stamps)
    return [line.replace(stamp, "T") for line, stamp in zip(lines, stamps, strict=True)]


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "POST", "route": "/webhooks/cybersource", "status": 200, "milliseconds": 0.042},
        {"text": 'quote " back\\slash \u00e9t\u00e9 \u2603 \n tab\t', "count": -7, "big": 10**30},
        {"milliseconds": 1e-07, "seconds": 12345678901234.5, "zero": 0.0, "negative": -0.0},
        # Not plain: structlog's own chain writes these.
        {"flag": True, "nothing": None, "items": [1, "two"], "ratio": float("nan")},
        {"level": "debug", "timestamp": "yesterday", "event_id": 3},
    ],
)
def test_a_plain_line_is_the_line_structlogs_chain_writes(
    json_logging: None, capsys: pytest.CaptureFixture[str], fields: dict[str, object]
) -> None:
    configure_logging("INFO")
    logger = structlog.get_logger("service.http")
    lines = PlainLines.of(logger)
    assert lines is not None
    with structlog.contextvars.bound_contextvars(request_id="0123456789abcdef", attempt=2):
        logger.info("http.request", **fields)
        lines.info("http.request", **fields)
    chain_line, plain_line = _timestamps_blanked(capsys.readouterr().err.splitlines())
    assert plain_line == chain_line


def test_plain_lines_are_not_used_above_info_nor_beside_another_configuration(
    json_logging: None,
) -> None:
    configure_logging("WARNING")
    assert PlainLines.of(structlog.get_logger("service.http")) is None
    structlog.reset_defaults()  # structlog's console rendering
    assert PlainLines.of(structlog.get_logger("service.http")) is None
    configure_logging("INFO")
    assert PlainLines.of(structlog.get_logger("service.http").bind(worker=1)) is None


@pytest.mark.parametrize(
    "nanoseconds",
    [
        1_796_688_000_000_000_000,  # a whole second: isoformat leaves the fraction out
        1_796_688_000_000_000_999,  # under a microsecond, floored as datetime floors it
        1_796_688_000_000_001_000,
        1_796_688_059_999_999_999,
        1_796_688_060_123_456_789,  # the next second, after the one before was rendered
    ],
)
def test_a_plain_lines_timestamp_is_the_one_structlogs_time_stamper_writes(
    json_logging: None, nanoseconds: int
) -> None:
    configure_logging("INFO")
    lines = PlainLines.of(structlog.get_logger("service.http"))
    assert lines is not None
    lines.timestamp_at(nanoseconds - 1_000_000_000)  # a second already rendered
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanoseconds // 1000)
    expected = instant.isoformat().replace("+00:00", "Z")
    assert lines.timestamp_at(nanoseconds) == expected
