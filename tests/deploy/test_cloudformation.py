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
    LOG_GROUPS,
    MEMBER_ROLES,
    PASS_ROLES,
    access_levels,
    actions_of,
    condition_problems,
    evaluate_conditions,
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
    "EnableEvidenceTable": "true",
    "MemberRoleArns": ",".join(MEMBER_ROLES),
    "MemberExternalId": "ecs-medic-7f3a",
    "Regions": "eu-west-1,us-east-1",
    "Shards": "4",
    "EnableRaiseGracePeriod": "true",
    "EnableCircuitBreaker": "true",
    "EnableRollbackTaskDefinition": "true",
    "EnableScaleCapacityProvider": "true",
    "EnableRaiseMemory": "true",
    "NotifySnsTopicArn": "arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications",
    "NotifyWebhookSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf",
    "PassRoleArns": ",".join(PASS_ROLES),
    "ContainerLogGroups": LOG_GROUPS,
    "ServiceDiscoveryNamespaceId": "ns-abcdefghijklmnop",
    "ApprovalKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
# Writes the agent may make in dry-run, each scoped to its one resource: publishing a notification to
# the configured topic; assuming the member accounts' roles to read them (IAM counts AssumeRole as a
# write; it changes nothing, and in dry-run the member roles grant no write either); and kms:Verify on
# the approval key, which IAM files under Write although it only checks a signature and changes nothing.
# Otherwise a dry-run agent proposes, and remembers in memory.
DRY_RUN_WRITES: frozenset[str] = frozenset({"sns:Publish", "sts:AssumeRole", "kms:Verify"})
# The longest prefix first: EventsQueueDelete* is not EventsQueue*.
SID_PREFIXES = {
    "EventsQueueDelete": "events_queue_enforce",
    "EventsQueue": "events_queue",
    "EvidenceTableWrite": "evidence_table_enforce",
    "EvidenceTable": "evidence_table",
    "MemberAccounts": "member_accounts",
    "Read": "reads",
    "State": "state",
    "LeaseTable": "lease_table",
    "Notify": "notifications",
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


def _policy_documents(template: dict[str, Any], conditions: dict[str, bool] | None = None) -> dict[str, Any]:
    """The agent role's policy documents by name: TaskRole's inline policies and the role policies attached
    to it (only those whose Condition holds, when `conditions` are given)."""
    resources = template["Resources"]
    documents = {p["PolicyName"]: p["PolicyDocument"] for p in resources["TaskRole"]["Properties"]["Policies"]}
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::RolePolicy" and resource["Properties"]["RoleName"] == {"Ref": "TaskRole"}:
            if conditions is not None and "Condition" in resource and not conditions[resource["Condition"]]:
                continue
            documents[resource["Properties"]["PolicyName"]] = resource["Properties"]["PolicyDocument"]
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


@pytest.mark.parametrize("policy", ["ecs-medic-observe", "ecs-medic-enforce", "ecs-medic-actions"])
def test_task_role_policy_parliament(policy):
    findings = parliament_findings(resolve(_policy_documents(load_cfn())[policy]))
    assert unaccepted_parliament_findings(findings) == []


def test_task_role_permissions_equal_permissions_json():
    """Statement ids name their purpose: Read*, State*, EventsQueue*, LeaseTable*, Action<Name>*."""
    permissions = load_permissions()
    camel = {name: "".join(word.title() for word in name.split("_")) for name in permissions["actions"]}
    prefixes = SID_PREFIXES
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
    assert template["Resources"]["EnforcePolicy"]["Condition"] == "Enforce"
    # The policy that is always there only reads, and publishes notifications (sent in dry-run too).
    observe = resolve(_policy_documents(template)["ecs-medic-observe"])
    always = {action for statement in observe["Statement"] for action in actions_of(statement)}
    permissions = load_permissions()
    assert always == {
        *permissions["reads"],
        *permissions["events_queue"],
        *permissions["evidence_table"],
        *permissions["member_accounts"],
        *permissions["notifications"],
    }
    enforce = resolve(_policy_documents(template)["ecs-medic-enforce"])
    assert {action for statement in enforce["Statement"] for action in actions_of(statement)} == {
        *permissions["state"],
        *permissions["events_queue_enforce"],
        *permissions["lease_table"],
        *permissions["evidence_table_enforce"],
    }


def _granted(parameters: dict[str, str]) -> set[str]:
    template = load_cfn()
    conditions = evaluate_conditions(template, parameters)
    documents = _policy_documents(template, conditions)
    return {a for d in documents.values() for s in resolve(d, conditions)["Statement"] for a in actions_of(s)}


def test_the_dry_run_stack_grants_no_write_at_all():
    """Every feature on but Mode=dry-run: the agent's role may read and nothing else (IAM's own access
    levels, from the service authorization reference that parliament ships)."""
    granted = _granted({**ALL_FEATURES, "Mode": "dry-run"})
    levels = access_levels(sorted(granted))
    writes = {action for action, level in levels.items() if level not in ("Read", "List")}
    assert writes - DRY_RUN_WRITES == set()
    assert "ecs:DescribeServices" in granted
    assert {"ecs:TagResource", "sqs:DeleteMessage", "dynamodb:UpdateItem"} & granted == set()


def test_the_enforcing_stack_grants_the_writes_of_the_enabled_actions():
    granted = _granted(ALL_FEATURES)
    assert {
        "ecs:TagResource",
        "ecs:UpdateService",
        "iam:PassRole",
        "sqs:DeleteMessage",
        "dynamodb:UpdateItem",
    } <= granted
    without_memory = _granted({**ALL_FEATURES, "EnableRaiseMemory": "false"})
    assert {"iam:PassRole", "ecs:RegisterTaskDefinition"} & without_memory == set()


def test_pass_role_only_for_the_managed_task_definitions_roles_and_only_to_ecs_tasks():
    template = load_cfn()
    conditions = evaluate_conditions(template, ALL_FEATURES)
    documents = _policy_documents(template, conditions)
    [statement] = [
        s for d in documents.values() for s in resolve(d, conditions)["Statement"] if "iam:PassRole" in actions_of(s)
    ]
    assert statement["Resource"] == PASS_ROLES
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    rule = template["Rules"]["RaiseMemoryNeedsItsRoles"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "EnableRaiseMemory"}, "true"]}
    # Without roles, raise_memory's permissions are not granted at all (and the rule refuses the stack).
    no_roles = evaluate_conditions(template, {**ALL_FEATURES, "PassRoleArns": ""})
    assert not no_roles["AllowRaiseMemory"]


def test_log_reads_only_for_the_managed_services_log_groups():
    template = load_cfn()
    conditions = evaluate_conditions(template, ALL_FEATURES)
    statements = [
        s for d in _policy_documents(template, conditions).values() for s in resolve(d, conditions)["Statement"]
    ]
    [logs] = [s for s in statements if "logs:GetLogEvents" in actions_of(s)]
    assert logs["Resource"] == "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/shop-*:log-stream:*"
    assert "logs:GetLogEvents" not in _granted({**ALL_FEATURES, "ContainerLogGroups": ""})


def test_container_follows_the_contract():
    template = load_cfn()
    container = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["ReadonlyRootFilesystem"] is True
    assert container["User"] == "10001:10001"
    assert container["PortMappings"][0]["ContainerPort"] == 9740
    assert any("/healthz" in part for part in container["HealthCheck"]["Command"])
    # One action, with all its calls and retries, takes at most 90 s; SIGTERM lets it finish.
    assert container["StopTimeout"] == 120  # the Fargate maximum
    assert container["HealthCheck"]["StartPeriod"] == 300  # /healthz fails until the first pass saw the fleet
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
        "ECS_MEDIC_REPLICAS",
        "ECS_MEDIC_SHARDS",
        "ECS_MEDIC_API_BUDGET_FRACTION",
        "ECS_MEDIC_RESYNC_INTERVAL_SECONDS",
        "ECS_MEDIC_EVIDENCE_TABLE",
        "ECS_MEDIC_EVIDENCE_RETENTION_SECONDS",
        "ECS_MEDIC_ASSUME_ROLE_ARNS",
        "ECS_MEDIC_ASSUME_ROLE_EXTERNAL_ID",
        "ECS_MEDIC_REGIONS",
    }
    assert {"Name": "ECS_MEDIC_REPLICAS", "Value": {"Ref": "DesiredCount"}} in container["Environment"]
    from agent.settings import Settings  # noqa: PLC0415 - every variable the stack sets is a setting

    assert {n for n in names if n.startswith("ECS_MEDIC_")} <= set(Settings.variables())
    assert template["Parameters"]["Mode"]["Default"] == "dry-run"


def test_prometheus_finds_the_agent_through_cloud_map():
    template = load_cfn()
    resources = template["Resources"]
    discovery = resources["DiscoveryService"]
    assert discovery["Condition"] == "WithServiceDiscovery"
    assert discovery["Properties"]["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]
    registries = resources["Service"]["Properties"]["ServiceRegistries"]["Fn::If"]
    assert registries[0] == "WithServiceDiscovery"
    assert registries[1] == [{"RegistryArn": {"Fn::GetAtt": ["DiscoveryService", "Arn"]}}]


def test_events_rule_matches_the_ecs_events():
    pattern = load_cfn()["Resources"]["EcsEventsRule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    assert set(pattern["detail-type"]) == {"ECS Task State Change", "ECS Service Action", "ECS Deployment State Change"}


def test_member_roles_are_assumed_and_only_they():
    granted = _granted(ALL_FEATURES)
    assert "sts:AssumeRole" in granted
    assert "sts:AssumeRole" not in _granted({**ALL_FEATURES, "MemberRoleArns": ""})
    [assume] = [s for s in _task_role_statements(load_cfn()) if "sts:AssumeRole" in actions_of(s)]
    assert assume["Resource"] == MEMBER_ROLES


def test_the_evidence_table_keeps_evidence_with_a_ttl_and_is_written_only_in_enforce_mode():
    table = load_cfn()["Resources"]["EvidenceTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["service", "task"]
    assert "dynamodb:PutItem" not in _granted({**ALL_FEATURES, "Mode": "dry-run", "EnableLeaseTable": "false"})
    assert {"dynamodb:Query", "dynamodb:PutItem"} <= _granted(ALL_FEATURES)
