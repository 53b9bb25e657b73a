"""IAM policy helpers shared by the CloudFormation and IAM tests."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import PERMISSIONS, run, tool

# Pseudo parameters and attributes, to turn the template's policies into plain JSON.
_REFS = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "NotifySnsTopicArn": "arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications",
    "NotifyWebhookSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf",
}
_ATTRS = {
    "EventsQueue.Arn": "arn:aws:sqs:eu-west-1:123456789012:ecs-medic-events",
    "LeaseTable.Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/ecs-medic-leases",
    "EcsEventsRule.Arn": "arn:aws:events:eu-west-1:123456789012:rule/ecs-medic-events",
}
_NO_VALUE = object()

# Findings of parliament that are accepted, with the reason. Anything else fails the test.
ACCEPTED_RESOURCE_STAR = {
    # ECS authorizes ListTasks against container-instance ARNs, which Fargate tasks have none of;
    # the documented pattern is Resource "*" narrowed with the ecs:cluster condition, as here.
    "ecs:listtasks",
}


def resolve(node: Any) -> Any:
    """The template fragment with every feature enabled: Fn::If takes its true branch."""
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Fn::If":
                return resolve(value[1])
            if key == "Ref":
                return _NO_VALUE if value == "AWS::NoValue" else _REFS.get(value, f"ref-{value}")
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: _REFS.get(m.group(1), m.group(1)), value)
            if key == "Fn::GetAtt":
                return _ATTRS[".".join(value)]
        return {k: r for k, v in node.items() if (r := resolve(v)) is not _NO_VALUE}
    if isinstance(node, list):
        return [r for v in node if (r := resolve(v)) is not _NO_VALUE]
    return node


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def load_permissions() -> dict[str, Any]:
    permissions: dict[str, Any] = json.loads(PERMISSIONS.read_text())
    return permissions


def all_permissions(permissions: dict[str, Any]) -> set[str]:
    actions = set(permissions["reads"]) | set(permissions["state"])
    actions |= set(permissions["events_queue"]) | set(permissions["lease_table"]) | set(permissions["notifications"])
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
        if "iam:PassRole" in actions and equals.get("iam:PassedToService") != "ecs-tasks.amazonaws.com":
            problems.append(f"{sid}: iam:PassRole without iam:PassedToService=ecs-tasks.amazonaws.com")
        on_create = equals.get("ecs:CreateAction") == "RegisterTaskDefinition"
        if on_create and (actions != {"ecs:TagResource"} or ":task-definition/" not in str(statement["Resource"])):
            problems.append(f"{sid}: tag-on-create must be ecs:TagResource on task definitions alone")
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
