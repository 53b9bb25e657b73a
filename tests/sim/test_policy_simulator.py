"""The world answers IAM's policy simulator from the policies IAM stores, and starts with a NAT path out."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

REPOSITORY = "arn:aws:ecr:us-east-1:123456789012:repository/web"
ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"


def decisions(world, role=ROLE, actions=("ecr:BatchGetImage",), resources=(REPOSITORY,)):
    params = {"PolicySourceArn": role, "ActionNames": list(actions)}
    if resources:
        params["ResourceArns"] = list(resources)
    results = world.client("iam").simulate_principal_policy(**params)["EvaluationResults"]
    return {
        (r["EvalActionName"], r["EvalResourceName"]): (
            r["EvalDecision"],
            [s["SourcePolicyId"] for s in r["MatchedStatements"]],
        )
        for r in results
    }


def test_the_default_execution_role_may_pull_and_log_but_not_read_secrets(world):
    found = decisions(
        world,
        actions=("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "secretsmanager:GetSecretValue"),
        resources=(),
    )
    assert found[("ecr:GetAuthorizationToken", "*")] == ("allowed", ["ecr-login-and-logs"])
    assert found[("ecr:BatchGetImage", "*")][0] == "implicitDeny"  # allowed on repositories, not on "*"
    assert found[("secretsmanager:GetSecretValue", "*")] == ("implicitDeny", [])
    assert decisions(world)[("ecr:BatchGetImage", REPOSITORY)] == ("allowed", ["ecr-pull"])


def test_a_revoked_pull_policy_is_an_implicit_deny_and_a_deny_statement_wins(world):
    world.revoke_ecr_pull("ecsTaskExecutionRole")
    assert decisions(world)[("ecr:BatchGetImage", REPOSITORY)] == ("implicitDeny", [])
    world.grant_ecr_pull("ecsTaskExecutionRole")
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ecr:*", "Resource": "*"}]}
    world.client("iam").put_role_policy(
        RoleName="ecsTaskExecutionRole", PolicyName="no-ecr", PolicyDocument=json.dumps(deny)
    )
    assert decisions(world)[("ecr:BatchGetImage", REPOSITORY)] == ("explicitDeny", ["no-ecr"])


def test_attached_managed_policies_count_under_their_own_name(world):
    iam = world.client("iam")
    world.add_execution_role("managed", ecr_pull=False)
    pull = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecr:BatchGetImage"], "Resource": "*"}],
    }
    arn = iam.create_policy(PolicyName="team-pull", PolicyDocument=json.dumps(pull))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="managed", PolicyArn=arn)
    found = decisions(world, role="arn:aws:iam::123456789012:role/managed")
    assert found[("ecr:BatchGetImage", REPOSITORY)] == ("allowed", ["team-pull"])


def test_an_unknown_role_is_no_such_entity(world):
    with pytest.raises(ClientError) as raised:
        decisions(world, role="arn:aws:iam::123456789012:role/nobody")
    assert raised.value.response["Error"]["Code"] == "NoSuchEntity"


def test_simulation_is_a_read(world):
    world.requests.clear()
    decisions(world)
    assert world.requests.names() == ["iam:SimulatePrincipalPolicy"]
    assert world.requests.mutating() == []


def test_the_task_subnets_start_behind_a_nat_gateway(world):
    ec2 = world.client("ec2")
    subnet = world.network.subnets[0][0]
    [table] = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"]
    default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default[0]["NatGatewayId"] == world.net.egress.nat_gateway
    world.net.remove_nat_route()
    [table] = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"]
    assert [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"] == []
