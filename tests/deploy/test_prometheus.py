"""deploy/prometheus: promtool check/test on the alerts, the example config, and the alerts' PromQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    ALERTS,
    ALERTS_TEST,
    ALLOWED_SERIES,
    PROMETHEUS_CONFIG,
    REPO,
    parse_promql,
    run,
    tool,
)

RUNBOOK = "https://github.com/ecs-medic/ecs-medic/blob/main/README.md#"
SEVERITIES = {"critical", "warning", "info"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_check_rules():
    run([tool("promtool"), "check", "rules", str(ALERTS)])


def test_unit_tests_of_the_alerts():
    result = run([tool("promtool"), "test", "rules", str(ALERTS_TEST)])
    assert "SUCCESS" in result.stdout


def test_check_example_config():
    run([tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)])


def test_every_alert_is_tested_firing_and_not_firing():
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a not-firing test"


def test_the_brief_s_alerts_exist():
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= {
        "EcsMedicDown",
        "EcsMedicReconcileStalled",
        "EcsMedicRemediationStorm",
        "EcsMedicRemediationNotEffective",
        "EcsMedicEnforcementPaused",
        "EcsMedicApprovalsWaiting",
        "EcsMedicAwsThrottled",
    }


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_labels_and_annotations(rule):
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    assert annotations["runbook_url"] == RUNBOOK + rule["alert"].lower()


def test_runbook_sections_exist_in_the_readme():
    readme = (REPO / "README.md").read_text()
    if "Alerts runbook" not in readme:
        pytest.skip("README.md has no 'Alerts runbook' section yet")
    headings = {line.lstrip("#").strip() for line in readme.splitlines() if line.startswith("#")}
    missing = {rule["alert"] for rule in alert_rules()} - headings
    assert missing == set(), "README.md lacks a runbook heading for these alerts"


def test_alert_expressions_parse_and_use_contract_metrics():
    exprs = [rule["expr"] for rule in alert_rules()]
    parsed = parse_promql(exprs)
    assert [p for p in parsed if "error" in p] == []
    used = {name for p in parsed for name in p["names"]}
    assert used - ALLOWED_SERIES == set(), "metric names outside the contract"
    assert all(re.search(r"\becs_medic_|\bup\b", expr) for expr in exprs)
