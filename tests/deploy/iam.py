"""IAM policy helpers shared by the CloudFormation and IAM tests."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest

from tests.deploy.conftest import PERMISSIONS, TOOLS, run, tool

# Pseudo parameters, parameters and attributes, to turn the template's policies into plain JSON.
PASS_ROLES = ["arn:aws:iam::123456789012:role/shop-task", "arn:aws:iam::123456789012:role/shop-execution"]
LOG_GROUPS = "/ecs/shop-*"
MEMBER_ROLES = ["arn:aws:iam::222222222222:role/ecs-medic-member", "arn:aws:iam::333333333333:role/ecs-medic-member"]
_REFS: dict[str, Any] = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "PassRoleArns": PASS_ROLES,
    "ContainerLogGroups": LOG_GROUPS,
    "MemberRoleArns": MEMBER_ROLES,
    "NotifySnsTopicArn": "arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications",
    "ApprovalKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "NotifyWebhookSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf",
}
_ATTRS = {
    "EventsQueue.Arn": "arn:aws:sqs:eu-west-1:123456789012:ecs-medic-events",
    "LeaseTable.Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/ecs-medic-leases",
    "EvidenceTable.Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/ecs-medic-evidence",
    "EcsEventsRule.Arn": "arn:aws:events:eu-west-1:123456789012:rule/ecs-medic-events",
}
_NO_VALUE = object()

# Findings of parliament that are accepted, with the reason. Anything else fails the test.
ACCEPTED_RESOURCE_STAR = {
    # ECS authorizes ListTasks against container-instance ARNs, which Fargate tasks have none of;
    # the documented pattern is Resource "*" narrowed with the ecs:cluster condition, as here.
    "ecs:listtasks",
}


def resolve(node: Any, conditions: Mapping[str, bool] | None = None) -> Any:
    """The template fragment as plain JSON. Without `conditions`, every feature is enabled (Fn::If takes
    its true branch); with them (see `evaluate_conditions`), each Fn::If takes the branch they say."""
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Fn::If":
                taken = value[1] if conditions is None or conditions[value[0]] else value[2]
                return resolve(taken, conditions)
            if key == "Ref":
                return _NO_VALUE if value == "AWS::NoValue" else _REFS.get(value, f"ref-{value}")
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(_REFS.get(m.group(1), m.group(1))), value)
            if key == "Fn::GetAtt":
                return _ATTRS[".".join(value)]
        return {k: r for k, v in node.items() if (r := resolve(v, conditions)) is not _NO_VALUE}
    if isinstance(node, list):
        return [r for v in node if (r := resolve(v, conditions)) is not _NO_VALUE]
    return node


def evaluate_conditions(template: dict[str, Any], parameters: Mapping[str, str]) -> dict[str, bool]:
    """Every condition of the template, for these parameter values (the others at their defaults)."""
    values: dict[str, Any] = {name: p.get("Default", "") for name, p in template["Parameters"].items()}
    values.update(parameters)
    for name, parameter in template["Parameters"].items():
        if parameter["Type"] == "CommaDelimitedList" and isinstance(values[name], str):
            values[name] = values[name].split(",")

    def value(node: Any) -> Any:
        if isinstance(node, dict):
            ((key, argument),) = node.items()
            if key == "Ref":
                return values[argument] if argument in values else _REFS[argument]
            if key == "Fn::Join":
                parts = value(argument[1])
                return argument[0].join(str(value(part)) for part in parts)
        return node

    def truth(node: Any) -> bool:
        ((key, argument),) = node.items()
        if key == "Fn::Equals":
            return bool(str(value(argument[0])) == str(value(argument[1])))
        if key == "Fn::Not":
            return not truth(argument[0])
        if key == "Fn::And":
            return all(truth(part) for part in argument)
        if key == "Fn::Or":
            return any(truth(part) for part in argument)
        if key == "Condition":
            return truth(template["Conditions"][argument])
        raise ValueError(f"unknown condition function {key}")

    return {name: truth(node) for name, node in template["Conditions"].items()}


_ACCESS_LEVELS = """
import json, sys
import parliament
from pathlib import Path

database = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
levels = {}
for action in json.load(sys.stdin):
    prefix, name = action.split(":")
    service = next(s for s in database if s["prefix"] == prefix)
    privilege = next(p for p in service["privileges"] if p["privilege"].lower() == name.lower())
    levels[action] = privilege["access_level"]
json.dump(levels, sys.stdout)
"""


def access_levels(actions: list[str]) -> dict[str, str]:
    """IAM's access level of each action (Read, List, Write, Tagging, Permissions management), from
    parliament's copy of the AWS service authorization reference."""
    tool("parliament")
    python = TOOLS / "venv" / "bin" / "python"
    result = subprocess.run(
        [python, "-c", _ACCESS_LEVELS],
        input=json.dumps(actions),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    levels: dict[str, str] = json.loads(result.stdout)
    return levels


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def load_permissions() -> dict[str, Any]:
    permissions: dict[str, Any] = json.loads(PERMISSIONS.read_text())
    return permissions


def all_permissions(permissions: dict[str, Any]) -> set[str]:
    actions = set(permissions["reads"]) | set(permissions["state"])
    actions |= set(permissions["events_queue"]) | set(permissions["events_queue_enforce"])
    actions |= set(permissions["lease_table"])
    actions |= set(permissions["evidence_table"]) | set(permissions["evidence_table_enforce"])
    actions |= set(permissions["member_accounts"])
    actions |= set(permissions["notifications"])
    for needed in permissions["actions"].values():
        actions |= set(needed)
    return actions


def condition_problems(statements: list[dict[str, Any]]) -> list[str]:
    """The contract's conditions on mutating permissions, checked on resolved statements."""
    problems = []
    for statement in statements:
        sid = statement.get("Sid", "?")
        actions = set(actions_of(statement))
        condition = statement.get("Condition", {})
        equals = condition.get("StringEquals", {})
        if "ecs:UpdateService" in actions and equals.get("aws:ResourceTag/ecs-medic:managed") != "true":
            problems.append(f"{sid}: ecs:UpdateService without aws:ResourceTag/ecs-medic:managed=true")
        if "autoscaling:UpdateAutoScalingGroup" in actions and (
            equals.get("autoscaling:ResourceTag/ecs-medic:managed") != "true"
        ):
            problems.append(f"{sid}: UpdateAutoScalingGroup without autoscaling:ResourceTag/ecs-medic:managed=true")
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "iam:PassRole" in actions and equals.get("iam:PassedToService") != "ecs-tasks.amazonaws.com":
            problems.append(f"{sid}: iam:PassRole without iam:PassedToService=ecs-tasks.amazonaws.com")
        on_create = equals.get("ecs:CreateAction") == "RegisterTaskDefinition"
        if on_create and (actions != {"ecs:TagResource"} or ":task-definition/" not in str(statement["Resource"])):
            problems.append(f"{sid}: tag-on-create must be ecs:TagResource on task definitions alone")
        if "iam:PassRole" in actions and any(r == "*" or r.endswith(":role/*") for r in resources):
            problems.append(f"{sid}: iam:PassRole on every role, not only the managed task definitions' roles")
        if "logs:GetLogEvents" in actions and any(r == "*" or r.endswith(":log-group:*") for r in resources):
            problems.append(f"{sid}: logs:GetLogEvents on every log group, not only the managed services' groups")
        if actions & {"ecs:TagResource", "ecs:UntagResource"}:
            # Tagging on create carries the change's token on the revision being registered.
            allowed_resource = ":task-definition/" if on_create else ":service/"
            tag_keys = condition.get("ForAllValues:StringLike", {}).get("aws:TagKeys")
            if (
                not on_create and equals.get("aws:ResourceTag/ecs-medic:managed") != "true"
            ) or tag_keys != "ecs-medic:*":
                problems.append(f"{sid}: tagging not limited to managed services and ecs-medic:* keys")
            if condition.get("Null", {}).get("aws:TagKeys") != "false":
                problems.append(f"{sid}: ForAllValues without Null aws:TagKeys=false also allows no keys")
            if statement["Resource"] == "*" or allowed_resource not in str(statement["Resource"]):
                problems.append(f"{sid}: tagging not limited to service ARNs (or revisions on create)")
    return problems


def parliament_findings(policy: dict[str, Any] | str) -> list[dict[str, Any]]:
    """Parliament's findings for one policy document (`--string`: `--file` needs a TTY)."""
    text = policy if isinstance(policy, str) else json.dumps(policy, indent=2)
    result = run([tool("parliament"), "--json", "--string", text], check=False)
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 and not findings:
        pytest.fail(f"parliament exited {result.returncode} without findings:\n{result.stderr}", pytrace=False)
    return findings


def unaccepted_parliament_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings left after removing the accepted ones (ACCEPTED_RESOURCE_STAR)."""
    rejected = []
    for finding in findings:
        if finding["issue"] == "RESOURCE_STAR":
            flagged = {a.lower() for a in finding["detail"]} if isinstance(finding["detail"], list) else set()
            if flagged and flagged <= ACCEPTED_RESOURCE_STAR:
                continue
        rejected.append(finding)
    return rejected
