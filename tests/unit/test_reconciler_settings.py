"""The reconciler's schedule and the shutdown grace, from the environment."""

from __future__ import annotations

import pytest

from service.settings import ConfigurationError, load_settings


def test_the_full_sweep_runs_weekly_and_a_stop_has_ten_seconds_by_default() -> None:
    settings = load_settings()
    assert settings.reconciler_full_sweep_interval_seconds == 7 * 24 * 3600
    assert settings.shutdown_grace_seconds == 10


def test_the_full_sweep_interval_and_the_grace_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS", "86400")
    monkeypatch.setenv("LEDGER_SHUTDOWN_GRACE_SECONDS", "2.5")
    settings = load_settings()
    assert (settings.reconciler_full_sweep_interval_seconds, settings.shutdown_grace_seconds) == (
        86400,
        2.5,
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS", "10", "greater than or equal to 60"),
        ("LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS", "weekly", "valid integer"),
        ("LEDGER_SHUTDOWN_GRACE_SECONDS", "0", "greater than or equal to 1"),
    ],
)
def test_an_unusable_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"{variable}: .*{problem}"):
        load_settings()


def test_full_sweeps_may_not_come_more_often_than_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_RECONCILE_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS", "600")
    with pytest.raises(ConfigurationError, match="LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS"):
        load_settings()
