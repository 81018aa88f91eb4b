"""The benchmark harness's pure parts: reading wrk's and pgbench's output, and the
exactly-once arithmetic (the benchmarks themselves are not run by the suite)."""

from __future__ import annotations

import pytest

from bench.wrk import ExactlyOnce, parse_pgbench_tps, parse_wrk_output

WRK_OUTPUT = """Running 15s test @ http://127.0.0.1:8000/webhooks/cybersource
  2 threads and 32 connections
  14503 requests in 15.00s, 2.10MB read
WRK_JSON {"requests": 14503, "duration_us": 15000000, "p50_us": 7200, "p90_us": 11000, \
"p99_us": 14600, "max_us": 40000, "sent": 14535, "acknowledged": 14500, "other": 3, \
"wrapped": 0, "socket_errors": 0}
"""


def test_wrk_figures_are_read_from_the_line_the_script_prints() -> None:
    result = parse_wrk_output(WRK_OUTPUT)

    assert result.throughput == pytest.approx(14503 / 15)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (7.2, 14.6, 40.0)
    assert (result.sent, result.acknowledged, result.other) == (14535, 14500, 3)
    assert result.wrapped is False


def test_wrk_output_without_the_figures_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="unable to connect"):
        parse_wrk_output("unable to connect to 127.0.0.1:8000 Connection refused\n")


def test_pgbench_throughput_is_the_rate_without_connection_time() -> None:
    output = (
        "number of failed transactions: 0 (0.000%)\n"
        "tps = 2846.539503 (without initial connection time)\n"
    )

    assert parse_pgbench_tps(output) == pytest.approx(2846.539503)


def exactly_once(**changes: int) -> ExactlyOnce:
    counts = {
        "acknowledged": 1000,
        "sent": 1040,
        "inbox_rows": 1030,
        "distinct_notifications": 1030,
        "events": 1030,
        "max_unanswered": 64,
    }
    return ExactlyOnce(**{**counts, **changes})


def test_every_acknowledged_delivery_stored_once_holds_with_some_in_flight_at_the_cutoff() -> None:
    check = exactly_once()

    assert check.holds
    assert check.unanswered_at_cutoff == 30


def test_a_delivery_stored_twice_fails_the_check() -> None:
    assert not exactly_once(distinct_notifications=1029).holds
    assert not exactly_once(events=1031).holds


def test_an_acknowledged_delivery_missing_from_the_database_fails_the_check() -> None:
    assert not exactly_once(inbox_rows=999, distinct_notifications=999, events=999).holds


def test_more_stored_than_sent_or_could_be_in_flight_fails_the_check() -> None:
    assert not exactly_once(inbox_rows=1041, distinct_notifications=1041, events=1041).holds
    assert not exactly_once(max_unanswered=29).holds
