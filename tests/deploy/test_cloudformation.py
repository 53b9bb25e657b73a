"""deploy/cloudformation/ecs-medic.yaml: cfn-lint, parliament, checkov, and the task role's permissions."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import CFN_TEMPLATE, load_cfn, run, tool
from tests.deploy.iam import (
    actions_of,
    condition_problems,
    load_permissions,
    parliament_findings,
    resolve,
    unaccepted_parliament_findings,
)

CHECKOV_OPTIONS = ("--skip-download", "--output", "json")
# The parameters that turn every optional resource and permission on.
ALL_FEATURES = {
    "Mode": "enforce",
    "EnableEventsQueue": "true",
    "EnableLeaseTable": "true",
    "EnableRaiseGracePeriod": "true",
    "EnableCircuitBreaker": "true",
    "EnableRollbackTaskDefinition": "true",
    "EnableScaleCapacityProvider": "true",
    "EnableRaiseMemory": "true",
    "NotifySnsTopicArn": "arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications",
    "NotifyWebhookSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf",
}


@functools.cache
def _offline_prefix() -> tuple[str, ...]:
    """`unshare -n` where it works (root): cfn-lint then provably reads nothing from the network."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return (unshare, "-n")
    return ()


def _all_features_template(tmp_path: Path) -> Path:
    """The template as JSON with every feature on by default. checkov drops the resources whose
    Condition is false with the defaults, so this variant is the one that shows it all of them."""
    template = load_cfn()
    for name, value in ALL_FEATURES.items():
        template["Parameters"][name]["Default"] = value
    out = tmp_path / "ecs-medic-all-features.json"
    out.write_text(json.dumps(template, indent=1))
    return out


def _policy_documents(template: dict[str, Any]) -> dict[str, Any]:
    """The agent role's policy documents by name: TaskRole's inline policies and ActionsPolicy."""
    resources = template["Resources"]
    documents = {p["PolicyName"]: p["PolicyDocument"] for p in resources["TaskRole"]["Properties"]["Policies"]}
    actions = resources["ActionsPolicy"]["Properties"]
    documents[actions["PolicyName"]] = actions["PolicyDocument"]
    return documents


def _task_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the agent's role, resolved with all features on."""
    return [s for document in _policy_documents(template).values() for s in resolve(document)["Statement"]]


def test_cfn_lint():
    cfn_lint = tool("cfn-lint")
    run([*_offline_prefix(), cfn_lint, str(CFN_TEMPLATE)])


def test_cfn_lint_all_features(tmp_path):
    cfn_lint = tool("cfn-lint")
    run([*_offline_prefix(), cfn_lint, str(_all_features_template(tmp_path))])


def test_checkov(tmp_path):
    checkov = tool("checkov")
    variant = _all_features_template(tmp_path)
    result = run(
        [checkov, "-f", str(CFN_TEMPLATE), "-f", str(variant), "--framework", "cloudformation", *CHECKOV_OPTIONS],
        check=False,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for one in reports
        for check in one["results"]["failed_checks"]
    ]
    assert failed == []
    assert sum(one["summary"]["passed"] for one in reports) > 20, "checkov evaluated almost nothing"
    assert result.returncode == 0, result.stderr


def test_every_checkov_skip_gives_a_reason():
    for name, resource in load_cfn()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "")) > 20, f"{name}: checkov skip {skip['id']} without a reason"


@pytest.mark.parametrize("policy", ["ecs-medic-observe", "ecs-medic-actions"])
def test_task_role_policy_parliament(policy):
    findings = parliament_findings(resolve(_policy_documents(load_cfn())[policy]))
    assert unaccepted_parliament_findings(findings) == []


def test_task_role_permissions_equal_permissions_json():
    """Statement ids name their purpose: Read*, State*, EventsQueue*, LeaseTable*, Action<Name>*."""
    permissions = load_permissions()
    camel = {name: "".join(word.title() for word in name.split("_")) for name in permissions["actions"]}
    prefixes = {
        "Read": "reads",
        "State": "state",
        "EventsQueue": "events_queue",
        "LeaseTable": "lease_table",
        "Notify": "notifications",
    }
    granted: dict[str, set[str]] = {category: set() for category in prefixes.values()}
    granted_actions: dict[str, set[str]] = {name: set() for name in permissions["actions"]}
    for statement in _task_role_statements(load_cfn()):
        sid = statement["Sid"]
        category = next((c for prefix, c in prefixes.items() if sid.startswith(prefix)), None)
        if category:
            granted[category] |= set(actions_of(statement))
            continue
        action = next((a for a, c in camel.items() if sid.startswith(f"Action{c}")), None)
        assert action, f"statement {sid} has no purpose prefix"
        granted_actions[action] |= set(actions_of(statement))
    assert granted == {category: set(permissions[category]) for category in granted}
    assert granted_actions == {action: set(needed) for action, needed in permissions["actions"].items()}


def test_task_role_conditions():
    assert condition_problems(_task_role_statements(load_cfn())) == []


def test_mutating_permissions_only_in_enforce_mode():
    template = load_cfn()
    conditions = template["Conditions"]
    actions_policy = template["Resources"]["ActionsPolicy"]
    assert actions_policy["Condition"] == "AllowAnyAction"
    for entry in actions_policy["Properties"]["PolicyDocument"]["Statement"]:
        condition, _statement, otherwise = entry["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        assert {"Condition": "Enforce"} in conditions[condition]["Fn::And"], condition
    # The policy that is always there mutates nothing but the agent's own tags.
    observe = resolve(_policy_documents(template)["ecs-medic-observe"])
    always = {action for statement in observe["Statement"] for action in actions_of(statement)}
    permissions = load_permissions()
    assert always == {
        *permissions["reads"],
        *permissions["state"],
        *permissions["events_queue"],
        *permissions["lease_table"],
        *permissions["notifications"],  # notifications are sent in dry-run too
    }


def test_container_follows_the_contract():
    template = load_cfn()
    container = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["ReadonlyRootFilesystem"] is True
    assert container["User"] == "10001:10001"
    assert container["PortMappings"][0]["ContainerPort"] == 9740
    assert any("/healthz" in part for part in container["HealthCheck"]["Command"])
    assert container["StopTimeout"] > 10
    names = {e["Name"] for e in container["Environment"] if "Name" in e}
    names |= {e["Fn::If"][1]["Name"] for e in container["Environment"] if "Fn::If" in e}
    assert names >= {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "ECS_MEDIC_MODE",
        "ECS_MEDIC_CLUSTERS",
        "ECS_MEDIC_POLL_INTERVAL_SECONDS",
        "ECS_MEDIC_MAX_ACTIONS_PER_HOUR",
        "ECS_MEDIC_METRICS_PORT",
        "ECS_MEDIC_EVENTS_QUEUE_URL",
        "ECS_MEDIC_LEASE_TABLE",
        "ECS_MEDIC_LOG_FORMAT",
        "ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN",
        "ECS_MEDIC_NOTIFY_WEBHOOK_SECRET_ARN",
        "ECS_MEDIC_NOTIFY_WEBHOOK_FORMAT",
    }
    assert template["Parameters"]["Mode"]["Default"] == "dry-run"


def test_events_rule_matches_the_ecs_events():
    pattern = load_cfn()["Resources"]["EcsEventsRule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    assert set(pattern["detail-type"]) == {"ECS Task State Change", "ECS Service Action", "ECS Deployment State Change"}
