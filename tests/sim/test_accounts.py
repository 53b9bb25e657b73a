"""Several accounts in one world: each has its own services, running tasks and events; a client reaches
another account only through AssumeRole on a role that trusts it, as STS enforces it."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from agent.sim import World

MEMBER = "222222222222"


def assumed(world: World, role_arn: str, external_id: str | None = "medic-7") -> boto3.session.Session:
    params = {"RoleArn": role_arn, "RoleSessionName": "ecs-medic"}
    if external_id is not None:
        params["ExternalId"] = external_id
    credentials = world.client("sts").assume_role(**params)["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=world.region,
    )


@pytest.fixture
def member(web: World):
    account = web.add_account(MEMBER)
    account.add_fargate_cluster("prod")
    account.push_image("api", "v1")
    account.add_service("prod", "api", image="api:v1", desired_count=3)
    web.advance(180)
    return account


def test_a_second_account_runs_its_own_services(web: World, member):
    assert member.service_state("prod", "api").steady
    assert member.service_state("prod", "api").running == 3
    assert member.service_state("prod", "api").task_definition.startswith(f"arn:aws:ecs:us-east-1:{MEMBER}:")
    ours = web.client("ecs").list_services(cluster="prod")["serviceArns"]
    theirs = member.client("ecs").list_services(cluster="prod")["serviceArns"]
    assert ours == ["arn:aws:ecs:us-east-1:123456789012:service/prod/web"]
    assert theirs == [f"arn:aws:ecs:us-east-1:{MEMBER}:service/prod/api"]
    assert set(web.accounts) == {"123456789012", MEMBER}


def test_a_client_reaches_it_by_assuming_a_role_it_trusts(web: World, member):
    role = member.add_assumable_role("ecs-medic-member", trusted_account=web.account_id, external_id="medic-7")
    session = assumed(web, role)
    identity = session.client("sts", endpoint_url=web.endpoint_url).get_caller_identity()
    assert identity["Account"] == MEMBER
    assert identity["Arn"] == f"arn:aws:sts::{MEMBER}:assumed-role/ecs-medic-member/ecs-medic"
    ecs = session.client("ecs", endpoint_url=web.endpoint_url)
    tasks = ecs.list_tasks(cluster="prod", serviceName="api")["taskArns"]
    described = ecs.describe_tasks(cluster="prod", tasks=tasks)["tasks"]
    assert len(described) == 3 and {t["lastStatus"] for t in described} == {"RUNNING"}
    assert all(t["taskArn"].startswith(f"arn:aws:ecs:us-east-1:{MEMBER}:task/prod/") for t in described)
    assert [r.account for r in web.requests.all() if r.service == "ecs"] == [MEMBER, MEMBER]


def test_a_task_stopped_in_the_member_account_shows_there(web: World, member):
    role = member.add_assumable_role("ecs-medic-member", trusted_account=web.account_id, external_id="medic-7")
    ecs = assumed(web, role).client("ecs", endpoint_url=web.endpoint_url)
    task = ecs.list_tasks(cluster="prod", serviceName="api")["taskArns"][0]
    ecs.stop_task(cluster="prod", task=task, reason="testing")
    web.advance(120)
    stopped = member.stopped_tasks("prod", "api")
    assert [t["stoppedReason"] for t in stopped] == ["testing"]
    assert member.service_state("prod", "api").running == 3, "the scheduler replaced it"


@pytest.mark.parametrize(
    ("external_id", "why"),
    [("wrong", "a different external id"), (None, "no external id")],
)
def test_sts_refuses_without_the_right_external_id(web: World, member, external_id, why):
    role = member.add_assumable_role("ecs-medic-member", trusted_account=web.account_id, external_id="medic-7")
    with pytest.raises(ClientError) as raised:
        assumed(web, role, external_id)
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, why
    assert error["Error"]["Code"] == "AccessDenied"
    assert error["Error"]["Message"] == (
        f"User: arn:aws:sts::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: {role}"
    )


def test_sts_refuses_a_role_that_does_not_exist_or_trusts_someone_else(web: World, member):
    missing = f"arn:aws:iam::{MEMBER}:role/nobody"
    with pytest.raises(ClientError, match="not authorized to perform: sts:AssumeRole"):
        assumed(web, missing)
    other = member.add_assumable_role("for-someone-else", trusted_account="999999999999", external_id="medic-7")
    with pytest.raises(ClientError, match="not authorized to perform: sts:AssumeRole"):
        assumed(web, other)


def test_an_explicit_deny_wins(web: World, member):
    role = member.add_assumable_role("denied", trusted_account=web.account_id)
    iam = member.client("iam")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": web.account_id}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
        ],
    }
    iam.update_assume_role_policy(RoleName="denied", PolicyDocument=json.dumps(policy))
    with pytest.raises(ClientError, match="AccessDenied"):
        assumed(web, role, None)


def test_credentials_expire_on_the_simulated_clock(web: World, member):
    role = member.add_assumable_role("ecs-medic-member", trusted_account=web.account_id)
    credentials = web.client("sts").assume_role(RoleArn=role, RoleSessionName="s1", DurationSeconds=900)["Credentials"]
    assert credentials["Expiration"] == web.now + timedelta(seconds=900)
    web.advance(600)
    again = web.client("sts").assume_role(RoleArn=role, RoleSessionName="s2")["Credentials"]
    assert again["Expiration"] == web.now + timedelta(hours=1)


def test_each_account_sends_its_events_to_its_own_queue(web: World, member):
    ours = web.configure_events_queue()
    theirs = member.configure_events_queue()
    member.scale("prod", "api", 4)
    web.advance(120)
    bodies = [
        json.loads(m["Body"])
        for m in member.client("sqs").receive_message(QueueUrl=theirs, MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies and {b["account"] for b in bodies} == {MEMBER}
    assert all(r.startswith(f"arn:aws:ecs:us-east-1:{MEMBER}:") for b in bodies for r in b["resources"])
    assert "Messages" not in web.client("sqs").receive_message(QueueUrl=ours, MaxNumberOfMessages=10)


@pytest.mark.usefixtures("member")
def test_account_ids_are_checked(web: World):
    with pytest.raises(ValueError, match="12 digits"):
        web.add_account("12345")
    with pytest.raises(ValueError, match="already"):
        web.add_account(MEMBER)
