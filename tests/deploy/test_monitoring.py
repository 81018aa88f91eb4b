"""deploy/prometheus/ and deploy/grafana/: valid for promtool, tested alerts, and every series
they read is one the service exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from service.metrics import LedgerMetrics

REPOSITORY = Path(__file__).resolve().parents[2]
RUNBOOK_PAGE = "docs/operations.md"
ALERTS = REPOSITORY / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = REPOSITORY / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = REPOSITORY / "deploy" / "grafana" / "invoice-ledger.json"
PROMTOOL_TIMEOUT_SECONDS = 120
METRIC_NAME = re.compile(r"\b(?:ledger|process)_[a-z0-9_]+\b")
# Grafana's variables, given values so promtool can parse a panel's expression.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "ledger"}


def promtool() -> str:
    program = shutil.which("promtool")
    if program is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: install the Debian package prometheus")
        pytest.skip("promtool is missing: install the Debian package prometheus")
    return program


def run_promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def sample_names(metric: Metric) -> set[str]:
    """The series names a collected metric appears under when scraped, with or without
    labelled children (a labelled metric with none yet has no samples to read them from)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "info": ("_info",),
    }.get(metric.type, ("",))
    return {metric.name + suffix for suffix in suffixes} | {s.name for s in metric.samples}


def exported_names() -> set[str]:
    registry = LedgerMetrics().registry
    return {name for metric in registry.collect() for name in sample_names(metric)}


def test_the_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    result = run_promtool("test", "rules", ALERTS_TEST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_is_refused_by_promtool(tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yaml"
    broken.write_text(ALERTS.read_text().replace("max by (namespace)", "max by namespace", 1))
    assert run_promtool("check", "rules", broken).returncode != 0


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    rules = []
    for number, expression in enumerate(dashboard_expressions()):
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        rules.append({"record": f"dashboard:panel_{number}", "expr": expression})
    rule_file = tmp_path / "dashboard.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_operations_page() -> None:
    page = (REPOSITORY / RUNBOOK_PAGE).read_text()
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        page_name, _, anchor = annotations["runbook_url"].partition("#")
        assert page_name == RUNBOOK_PAGE, rule["alert"]
        assert f'<a id="{anchor}"></a>' in page, f"{rule['alert']}: no #{anchor} in {page_name}"
        assert f"`{rule['alert']}`" in page, f"{rule['alert']} is not explained in {page_name}"


def test_every_metric_the_alerts_read_is_exported_by_the_service() -> None:
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no metric found in alerts.yaml"
    assert used - exported_names() == set()


def test_every_metric_the_dashboard_reads_is_exported_by_the_service() -> None:
    used = {
        name for expression in dashboard_expressions() for name in METRIC_NAME.findall(expression)
    }
    assert used, "no metric found in the dashboard"
    assert used - exported_names() == set()


def test_the_dashboard_shows_each_area_an_operator_watches() -> None:
    used = " ".join(dashboard_expressions())
    for series in (
        "ledger_http_requests_total",
        "ledger_http_request_duration_seconds_bucket",
        "ledger_webhook_deliveries_total",
        "ledger_webhook_signature_failures_total",
        "ledger_projection_lag_events",
        "ledger_projection_lag_seconds",
        "ledger_projector_up",
        "ledger_reconciler_calls_total",
        "ledger_reconciler_errors_total",
        "ledger_inbox_rows",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert series in used, series
