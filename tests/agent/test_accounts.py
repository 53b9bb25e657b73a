"""Many accounts and Regions against the simulated world: a session per (account, Region) from AssumeRole
with the external ID, credentials refreshed by botocore before they expire (on the simulated clock),
and one account's AccessDenied never stalling or hiding the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from pydantic import ValidationError

from agent.aws.accounts import Target, TargetResult, build_targets, for_each_target
from agent.settings import Settings
from agent.sim import World
from tests.sim.times import START

MEMBER, DENIED = "222222222222", "333333333333"
EXTERNAL_ID = "ecs-medic-7f3a"


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=9, start_time=START) as started:
        member = started.add_account(MEMBER)
        member.add_fargate_cluster("payments")
        member.push_image("api", "v1")
        member.add_service("payments", "api", image="api:v1", desired_count=2)
        member.add_assumable_role("ecs-medic-member", trusted_account=started.account_id, external_id=EXTERNAL_ID)
        other = started.add_account(DENIED)
        other.add_assumable_role("ecs-medic-member", trusted_account=started.account_id, external_id="another-id")
        started.advance(120)
        started.requests.clear()
        yield started


def base_session(world: World) -> boto3.session.Session:
    env = world.environment
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/ecs-medic-member"


def targets(world: World, *roles: str, regions: str = "") -> list[Target]:
    settings = Settings(assume_role_arns=",".join(roles), assume_role_external_id=EXTERNAL_ID, regions=regions)
    return build_targets(settings, base_session(world), endpoint_url=world.endpoint_url, time_fetcher=lambda: world.now)


def clusters(world: World) -> object:
    def work(target: Target) -> list[str]:
        ecs = target.session.client("ecs", endpoint_url=world.endpoint_url)
        return [arn.rsplit("/", 1)[-1] for arn in ecs.list_clusters()["clusterArns"]]

    return work


def test_one_target_per_role_and_region_and_building_them_calls_nothing(world):
    built = targets(world, role(MEMBER), role(DENIED), role(MEMBER), regions="us-east-1,eu-west-1")
    assert [t.label for t in built] == [
        f"{MEMBER}/us-east-1",
        f"{MEMBER}/eu-west-1",
        f"{DENIED}/us-east-1",
        f"{DENIED}/eu-west-1",
    ]
    assert [t.session.region_name for t in built] == ["us-east-1", "eu-west-1"] * 2
    assert {t.role_arn for t in built} == {role(MEMBER), role(DENIED)}
    assert world.requests.all() == [], "AssumeRole waits for the first call"


def test_each_target_reaches_its_account_with_the_external_id(world):
    [result] = for_each_target(targets(world, role(MEMBER)), clusters(world))
    assert result.ok and result.value == ["payments"]
    sts_calls = [r for r in world.requests.all() if r.operation == "AssumeRole"]
    assert [(r.account, r.status) for r in sts_calls] == [(world.account_id, 200)]
    assert [r.account for r in world.requests.all() if r.service == "ecs"] == [MEMBER]


def test_one_accounts_access_denied_never_stalls_the_others(world):
    results: list[TargetResult[object]] = for_each_target(
        targets(world, role(DENIED), role(MEMBER), regions="us-east-1,eu-west-1"), clusters(world)
    )
    assert [(r.target.label, r.ok) for r in results] == [
        (f"{DENIED}/us-east-1", False),
        (f"{DENIED}/eu-west-1", False),
        (f"{MEMBER}/us-east-1", True),
        (f"{MEMBER}/eu-west-1", True),
    ]
    assert [r.error_code for r in results[:2]] == ["AccessDenied", "AccessDenied"]
    assert "not authorized to perform: sts:AssumeRole" in str(results[0].error)
    assert [r.value for r in results[2:]] == [["payments"], []], "each Region has its own clusters"


def test_credentials_are_refreshed_before_they_expire_once_per_account(world):
    built = targets(world, role(MEMBER), regions="us-east-1,eu-west-1")
    work = clusters(world)

    def assume_calls() -> int:
        return sum(1 for r in world.requests.all() if r.operation == "AssumeRole")

    for_each_target(built, work)
    assert assume_calls() == 1, "one AssumeRole serves both Regions"
    world.advance(timedelta(minutes=44).total_seconds())
    for_each_target(built, work)
    assert assume_calls() == 1, "an hour's credentials are kept for 45 minutes"
    world.advance(timedelta(minutes=2).total_seconds())
    results = for_each_target(built, work)
    assert all(r.ok for r in results)
    assert assume_calls() == 2, "refreshed 15 minutes before expiry"
    world.advance(timedelta(minutes=46).total_seconds())
    for_each_target(built, work)
    assert assume_calls() == 3


def test_without_roles_the_targets_are_the_agents_own_account(world):
    built = build_targets(Settings(regions="us-east-1,eu-west-1"), base_session(world), endpoint_url=world.endpoint_url)
    assert [(t.account, t.region, t.role_arn) for t in built] == [
        (world.account_id, "us-east-1", None),
        (world.account_id, "eu-west-1", None),
    ]
    assert [r.operation for r in world.requests.all()] == ["GetCallerIdentity"]
    [result, _] = for_each_target(
        built, lambda t: t.session.client("ecs", endpoint_url=world.endpoint_url).list_clusters()
    )
    assert result.ok


def test_the_sdk_region_is_the_default(world):
    [target] = targets(world, role(MEMBER))
    assert target.region == world.region


def test_no_region_at_all_is_a_clear_error(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    base = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    assert base.region_name is None
    with pytest.raises(ValueError, match="ECS_MEDIC_REGIONS"):
        build_targets(Settings(assume_role_arns=role(MEMBER)), base)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("assume_role_arns", "arn:aws:iam::1234:role/x", "not an IAM role ARN"),
        ("assume_role_arns", "arn:aws:iam::123456789012:user/x", "not an IAM role ARN"),
        ("regions", "eu-west-1,Mars", "not a Region name"),
        ("assume_role_external_id", "x", "at least 2 characters"),
    ],
)
def test_bad_settings_name_the_problem(variable, value, named):
    with pytest.raises(ValidationError, match=named):
        Settings(**{variable: value})


def test_a_target_that_does_not_answer_gets_a_timeout_and_the_others_their_answers(world):
    built = targets(world, role(MEMBER), regions="us-east-1,eu-west-1")
    release = threading.Event()

    def work(target: Target) -> str:
        if target.region == "eu-west-1":
            release.wait(10)
        return target.label

    try:
        results = for_each_target(built, work, timeout=0.5)
    finally:
        release.set()
    assert results[0].value == f"{MEMBER}/us-east-1"
    assert results[1].error_code == "TimeoutError"
    assert for_each_target([], work) == []
