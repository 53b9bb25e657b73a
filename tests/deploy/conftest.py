"""Shared helpers for the deployment-artifact tests: they run the real validators.

Tools come from `deploy/ci/install-tools.sh` (`.tools/`), then from PATH. A missing tool skips the
tests that need it, with a message naming the tool and the install script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
TOOL_PATH = os.pathsep.join(
    [str(TOOLS / "bin"), str(TOOLS / "venv" / "bin"), str(TOOLS / "checkov-venv" / "bin"), os.environ.get("PATH", "")]
)
INSTALL_HINT = "run deploy/ci/install-tools.sh"

CFN_TEMPLATE = REPO / "deploy" / "cloudformation" / "ecs-medic.yaml"
PERMISSIONS = REPO / "deploy" / "iam" / "permissions.json"
STANDALONE_POLICY = REPO / "deploy" / "iam" / "ecs-medic-policy.json"
CHART = REPO / "helm" / "ecs-medic"
POLICIES = REPO / "policies"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yaml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "ecs-medic-dashboard.json"
DASHBOARD_SCHEMA = TOOLS / "npm" / "dashboard.schema.json"

# The product's metric names (README.md, "Metrics, dashboard and alerts"): dashboards and alerts may use only these,
# the series a histogram exposes, and Prometheus' own `up`.
CONTRACT_METRICS = frozenset(
    {
        "ecs_medic_remediations_total",
        "ecs_medic_findings_total",
        "ecs_medic_reconcile_passes_total",
        "ecs_medic_reconcile_duration_seconds",
        "ecs_medic_aws_calls_total",
        "ecs_medic_services_observed",
        "ecs_medic_unhealthy_services",
        "ecs_medic_pending_approvals",
        "ecs_medic_enforcement_paused",
        "ecs_medic_last_pass_timestamp_seconds",
        "ecs_medic_is_leader",
        "ecs_medic_shards_owned",
        "ecs_medic_queue_depth",
        "ecs_medic_aws_budget_remaining",
        "ecs_medic_detection_latency_seconds",
        "ecs_medic_target_up",
        "ecs_medic_target_last_pass_timestamp_seconds",
    }
)
HISTOGRAMS = frozenset({"ecs_medic_reconcile_duration_seconds", "ecs_medic_detection_latency_seconds"})
ALLOWED_SERIES = (
    CONTRACT_METRICS | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")} | {"up"}
)


def tool(name: str) -> str:
    """The path of a validator, or skip the test naming the missing tool."""
    found = shutil.which(name, path=TOOL_PATH)
    if found is None:
        pytest.skip(f"{name} not installed: {INSTALL_HINT}")
    return found


def run(
    args: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure (when `check`) fail the test with its command and output."""
    full_env = {**os.environ, "PATH": TOOL_PATH, **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result


def tools_python() -> str:
    """The interpreter of .tools/venv, which has promql-parser."""
    python = TOOLS / "venv" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"promql-parser not installed: {INSTALL_HINT}")
    probe = subprocess.run([python, "-c", "import promql_parser"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"promql-parser not installed: {INSTALL_HINT}")
    return str(python)


_PROMQL_NAMES = """
import json, sys
import promql_parser

out = []
for expr in json.load(sys.stdin):
    names = []
    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            names.append(node.name)
    try:
        promql_parser.walk(promql_parser.parse(expr), visit)
    except ValueError as error:
        out.append({"expr": expr, "error": str(error)})
    else:
        out.append({"expr": expr, "names": names})
json.dump(out, sys.stdout)
"""


def parse_promql(exprs: list[str]) -> list[dict[str, Any]]:
    """Parse each expression with promql-parser: [{expr, names}] or [{expr, error}]."""
    python = tools_python()
    result = subprocess.run(
        [python, "-c", _PROMQL_NAMES], input=json.dumps(exprs), capture_output=True, text=True, timeout=60, check=True
    )
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


# CloudFormation YAML: short-form intrinsics (!Ref, !Sub, ...) become their long form.
class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_cfn(path: Path = CFN_TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return template
