"""deploy/alertmanager/: a configuration amtool accepts, whose routes send every alert of
deploy/prometheus/alerts.yaml to the chat digest and the critical ones to on-call as well,
and whose digest template names each alert's summary, description and runbook."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
ALERTMANAGER = REPOSITORY / "deploy" / "alertmanager"
ALERTS = REPOSITORY / "deploy" / "prometheus" / "alerts.yaml"
TEMPLATE_PATH_IN_CONTAINER = "/etc/alertmanager/templates/ledger.tmpl"
AMTOOL_TIMEOUT_SECONDS = 60


def amtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    program = shutil.which("amtool")
    if program is None:
        if os.environ.get("CI") == "true":
            pytest.fail("amtool is missing: install the Debian package prometheus-alertmanager")
        pytest.skip("amtool is missing: install the Debian package prometheus-alertmanager")
    return subprocess.run(
        [program, *arguments], capture_output=True, text=True, timeout=AMTOOL_TIMEOUT_SECONDS
    )


@pytest.fixture
def configuration(tmp_path: Path) -> Path:
    """The example, reading its template from the repository instead of the container."""
    text = (ALERTMANAGER / "alertmanager.yml").read_text()
    assert TEMPLATE_PATH_IN_CONTAINER in text
    local = tmp_path / "alertmanager.yml"
    local.write_text(text.replace(TEMPLATE_PATH_IN_CONTAINER, str(ALERTMANAGER / "ledger.tmpl")))
    return local


def receivers_of(configuration: Path, **labels: str) -> set[str]:
    matched = amtool(
        "config", "routes", "test", f"--config.file={configuration}",
        *(f"{name}={value}" for name, value in labels.items()),
    )  # fmt: skip
    assert matched.returncode == 0, matched.stderr
    return set(matched.stdout.strip().split(","))


def test_amtool_accepts_the_example_configuration(configuration: Path) -> None:
    checked = amtool("check-config", str(configuration))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 templates" in checked.stdout


def test_every_alert_reaches_the_chat_digest_and_critical_ones_on_call_too(
    configuration: Path,
) -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert rules
    for rule in rules:
        severity = rule["labels"]["severity"]
        expected = {"ledger-chat", "ledger-on-call"} if severity == "critical" else {"ledger-chat"}
        labels = {"alertname": rule["alert"], "severity": severity, "namespace": "ledger"}
        assert receivers_of(configuration, **labels) == expected, rule["alert"]


def test_the_digest_names_each_alerts_summary_description_and_runbook() -> None:
    rendered = amtool(
        "template", "render", f"--template.glob={ALERTMANAGER / 'ledger.tmpl'}",
        '--template.text={{ template "ledger.digest.text" . }}',
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    # amtool's example data has two alerts without annotations: one line block each.
    assert rendered.stdout.count("Runbook:") == 2
