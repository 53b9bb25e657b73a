"""deploy/cloudformation/ecs-medic-member-role.yaml: cfn-lint, checkov, parliament, its permissions against
permissions.json, and its trust policy as the simulated world's STS enforces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from agent.sim import World
from tests.deploy.conftest import REPO, load_cfn, run, tool
from tests.deploy.iam import (
    LOG_GROUPS,
    PASS_ROLES,
    actions_of,
    condition_problems,
    load_permissions,
    parliament_findings,
    resolve,
    unaccepted_parliament_findings,
)
from tests.deploy.test_cloudformation import CHECKOV_OPTIONS, _offline_prefix
from tests.sim.times import START

MEMBER_TEMPLATE = REPO / "deploy" / "cloudformation" / "ecs-medic-member-role.yaml"
ALL_FEATURES = {
    "Mode": "enforce",
    "EnableRaiseGracePeriod": "true",
    "EnableCircuitBreaker": "true",
    "EnableRollbackTaskDefinition": "true",
    "EnableScaleCapacityProvider": "true",
    "EnableRaiseMemory": "true",
    "PassRoleArns": ",".join(PASS_ROLES),
    "ContainerLogGroups": LOG_GROUPS,
}


def template() -> dict[str, Any]:
    return load_cfn(MEMBER_TEMPLATE)


def _all_features(tmp_path: Path) -> Path:
    variant = template()
    for name, value in ALL_FEATURES.items():
        variant["Parameters"][name]["Default"] = value
    out = tmp_path / "ecs-medic-member-role-all-features.json"
    out.write_text(json.dumps(variant, indent=1))
    return out


def _policies(variant: dict[str, Any]) -> dict[str, Any]:
    resources = variant["Resources"]
    documents = {p["PolicyName"]: p["PolicyDocument"] for p in resources["MemberRole"]["Properties"]["Policies"]}
    for name in ("EnforcePolicy", "ActionsPolicy"):
        policy = resources[name]["Properties"]
        documents[policy["PolicyName"]] = policy["PolicyDocument"]
    return documents


def _statements(variant: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for document in _policies(variant).values() for s in resolve(document)["Statement"]]


# --- the real validators -------------------------------------------------------------------------------------


def test_cfn_lint(tmp_path):
    cfn_lint = tool("cfn-lint")
    run([*_offline_prefix(), cfn_lint, str(MEMBER_TEMPLATE)])
    run([*_offline_prefix(), cfn_lint, str(_all_features(tmp_path))])


def test_checkov(tmp_path):
    checkov = tool("checkov")
    result = run(
        [
            checkov,
            "-f",
            str(MEMBER_TEMPLATE),
            "-f",
            str(_all_features(tmp_path)),
            "--framework",
            "cloudformation",
            *CHECKOV_OPTIONS,
        ],
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
    assert sum(one["summary"]["passed"] for one in reports) > 3, "checkov evaluated almost nothing"
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("policy", ["ecs-medic-observe", "ecs-medic-actions"])
def test_policies_parliament(policy):
    findings = parliament_findings(resolve(_policies(template())[policy]))
    assert unaccepted_parliament_findings(findings) == []


# --- the contract, without tools ------------------------------------------------------------------------------


def test_permissions_are_the_agents_minus_its_own_queue_and_table():
    """The same purposes and actions as permissions.json, except the events queue, the lease table and
    the approval key, which live in the agent's own account."""
    permissions = load_permissions()
    camel = {name: "".join(word.title() for word in name.split("_")) for name in permissions["actions"]}
    granted: dict[str, set[str]] = {"reads": set(), "state": set()}
    granted_actions: dict[str, set[str]] = {name: set() for name in permissions["actions"]}
    for statement in _statements(template()):
        sid = statement["Sid"]
        if sid.startswith("Read"):
            granted["reads"] |= set(actions_of(statement))
        elif sid.startswith("State"):
            granted["state"] |= set(actions_of(statement))
        else:
            action = next((a for a, c in camel.items() if sid.startswith(f"Action{c}")), None)
            assert action, f"statement {sid} has no purpose prefix"
            granted_actions[action] |= set(actions_of(statement))
    # Approvals are checked with the key in the agent's own account: no kms:Verify in members.
    reads = set(permissions["reads"]) - {"kms:Verify"}
    assert granted == {"reads": reads, "state": set(permissions["state"])}
    assert granted_actions == {action: set(needed) for action, needed in permissions["actions"].items()}


def test_conditions_on_mutating_permissions():
    assert condition_problems(_statements(template())) == []


def test_mutating_permissions_only_in_enforce_mode():
    variant = template()
    conditions = variant["Conditions"]
    actions = variant["Resources"]["ActionsPolicy"]
    assert actions["Condition"] == "AllowAnyAction"
    for entry in actions["Properties"]["PolicyDocument"]["Statement"]:
        condition, _statement, otherwise = entry["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        assert {"Condition": "Enforce"} in conditions[condition]["Fn::And"], condition
    assert variant["Parameters"]["Mode"]["Default"] == "dry-run"
    assert variant["Resources"]["EnforcePolicy"]["Condition"] == "Enforce"  # its own tags too: dry-run writes nothing


def test_only_the_agents_role_with_the_external_id_may_assume_it():
    [statement] = template()["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"] == {"sts:ExternalId": {"Ref": "ExternalId"}}
    assert statement["Condition"]["ArnEquals"] == {"aws:PrincipalArn": {"Ref": "AgentRoleArn"}}
    assert template()["Resources"]["MemberRole"]["Properties"]["MaxSessionDuration"] == 3600


# --- the trust policy against the world's STS ------------------------------------------------------------------


def _trust_policy(*, agent_role_arn: str, external_id: str) -> dict[str, Any]:
    """The template's trust policy with its parameters filled in, as CloudFormation would."""
    parameters = {"AgentRoleArn": agent_role_arn, "ExternalId": external_id, "AWS::Partition": "aws"}

    def fill(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return parameters[value]
            if key == "Fn::Select":
                return fill(value[1])[int(value[0])]
            if key == "Fn::Split":
                return fill(value[1]).split(value[0])
            if key == "Fn::Sub":
                text, names = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name, replacement in {**parameters, **{k: fill(v) for k, v in names.items()}}.items():
                    text = text.replace(f"${{{name}}}", str(replacement))
                return text
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    document = template()["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]
    filled: dict[str, Any] = fill(document)
    return filled


def test_the_trust_policy_as_sts_enforces_it():
    with World.start(seed=2, start_time=START) as world:
        agent_role = world.add_assumable_role("ecs-medic", trusted_account=world.account_id)
        member = world.add_account("222222222222")
        policy = _trust_policy(agent_role_arn=agent_role, external_id="medic-ext-1")
        iam = member.client("iam")
        member_role = iam.create_role(RoleName="ecs-medic-member", AssumeRolePolicyDocument=json.dumps(policy))["Role"][
            "Arn"
        ]

        as_agent = world.client("sts").assume_role(RoleArn=agent_role, RoleSessionName="agent")["Credentials"]
        agent_sts = boto3.session.Session(
            aws_access_key_id=as_agent["AccessKeyId"],
            aws_secret_access_key=as_agent["SecretAccessKey"],
            aws_session_token=as_agent["SessionToken"],
            region_name=world.region,
        ).client("sts", endpoint_url=world.endpoint_url)

        granted = agent_sts.assume_role(RoleArn=member_role, RoleSessionName="ecs-medic", ExternalId="medic-ext-1")
        assert granted["AssumedRoleUser"]["Arn"].startswith("arn:aws:sts::222222222222:assumed-role/ecs-medic-member/")
        with pytest.raises(ClientError, match="AccessDenied"):
            agent_sts.assume_role(RoleArn=member_role, RoleSessionName="ecs-medic")
        with pytest.raises(ClientError, match="AccessDenied"):
            agent_sts.assume_role(RoleArn=member_role, RoleSessionName="ecs-medic", ExternalId="guessed")
        with pytest.raises(ClientError, match="AccessDenied"):  # the right id, but not the agent's role
            world.client("sts").assume_role(RoleArn=member_role, RoleSessionName="other", ExternalId="medic-ext-1")
