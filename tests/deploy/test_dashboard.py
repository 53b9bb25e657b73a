"""deploy/grafana/ecs-medic-dashboard.json: Grafana's published schema, PromQL of every panel."""

from __future__ import annotations

import json
import re
from itertools import combinations
from typing import Any

import pytest

from tests.deploy.conftest import ALLOWED_SERIES, DASHBOARD, DASHBOARD_SCHEMA, INSTALL_HINT, parse_promql, run, tool

# Grafana's variables, replaced by values PromQL accepts before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "${datasource}": "prometheus",
}
REQUIRED_PANELS = {
    "Remediations by action and outcome",
    "Proposals awaiting approval",
    "Findings by cause",
    "Top failing services",
    "Verified vs not effective",
    "Reconcile pass duration",
    "Age of the last pass",
    "AWS calls",
    "AWS throttles",
    "Clusters where enforcement is paused",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return dashboard()["panels"]


def promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


def test_matches_grafana_dashboard_schema():
    validator = tool("check-jsonschema")
    if not DASHBOARD_SCHEMA.exists():
        pytest.skip(f"dashboard schema (@grafana/schema) not installed: {INSTALL_HINT}")
    run([validator, "--schemafile", str(DASHBOARD_SCHEMA), str(DASHBOARD)])


def test_schema_version_and_variables():
    board = dashboard()
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("cluster", "service"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variables[name]["includeAll"] is True


def test_required_panels():
    assert {p["title"] for p in panels()} >= REQUIRED_PANELS


def test_every_panel_queries_the_datasource_variable():
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_panel_layout():
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    boxes = [(p["title"], p["gridPos"]) for p in panels()]
    for title, box in boxes:
        assert box["x"] + box["w"] <= 24, title
    for (a, pa), (b, pb) in combinations(boxes, 2):
        overlap_x = pa["x"] < pb["x"] + pb["w"] and pb["x"] < pa["x"] + pa["w"]
        overlap_y = pa["y"] < pb["y"] + pb["h"] and pb["y"] < pa["y"] + pa["h"]
        assert not (overlap_x and overlap_y), f"{a} overlaps {b}"


def test_every_expression_parses_and_uses_contract_metrics():
    exprs = {f"{p['title']} {t['refId']}": t["expr"] for p in panels() for t in p["targets"]}
    parsed = parse_promql([promql(e) for e in exprs.values()])
    errors = {name: p["error"] for name, p in zip(exprs, parsed, strict=True) if "error" in p}
    assert errors == {}
    used = {metric for p in parsed for metric in p["names"]}
    assert used - ALLOWED_SERIES == set(), "metric names outside the contract"


def test_variable_queries_use_contract_metrics():
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\w+)(\{.*\})?, *(\w+)\)", variable["query"])
        assert match, variable["name"]
        assert match.group(1) in ALLOWED_SERIES
        (parsed,) = parse_promql([promql(match.group(1) + (match.group(2) or ""))])
        assert "error" not in parsed, parsed
