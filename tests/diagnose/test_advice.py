"""The fix names the real cluster, service, task definition, image and role an operator would type."""

from __future__ import annotations

import json
import shlex

import pytest

from agent.diagnose import diagnose_service, diagnose_task
from agent.diagnose.advice import advice_for, advise
from agent.model import Cause, Subject
from tests.diagnose.builders import container, event, service, stopped_task


@pytest.mark.parametrize("cause", list(Cause), ids=lambda c: c.value)
def test_every_cause_has_advice_and_every_failure_a_command(cause):
    advice = advise(cause, Subject(cluster="prod", service="web", region="us-east-1", task_definition="web:42"))
    assert advice.fix
    if cause.is_failure:
        assert advice.commands
        for command in advice.commands:
            words = shlex.split(command)
            assert words[0] == "aws"
            assert words.count("--region") <= 1


def test_grace_period_advice_fills_in_cluster_service_and_twice_the_lifetime():
    task = stopped_task(
        container(exit_code=137),
        stop_code="ServiceSchedulerInitiated",
        stopped_reason="Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:"
        "123456789012:targetgroup/web/0123456789abcdef)",
        started_at="2026-04-19T03:10:00+00:00",
        stopped_at="2026-04-19T03:11:30+00:00",
    )
    finding = diagnose_task(task)
    assert finding is not None
    assert advice_for(finding).commands[0] == (
        "aws ecs update-service --cluster prod --service web --health-check-grace-period-seconds 180 --region us-east-1"
    )
    assert "targetgroup/web/0123456789abcdef" in advice_for(finding).commands[1]


def test_pull_permission_advice_names_the_role_and_the_repository():
    reason = (
        "CannotPullContainerError: Error response from daemon: pull access denied for "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web, repository does not exist or may require 'docker login': "
        "denied: User: arn:aws:sts::123456789012:assumed-role/webExecutionRole/0a1b2c is not authorized to perform: "
        "ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:123456789012:repository/web"
    )
    task = stopped_task(
        container(reason=reason, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v9"),
        stop_code="TaskFailedToStart",
        stopped_reason=reason,
    )
    finding = diagnose_task(task)
    assert finding is not None
    assert finding.cause == Cause.IMAGE_PULL_AUTH
    put_policy = advice_for(finding).commands[1]
    assert "--role-name webExecutionRole" in put_policy
    document = json.loads(shlex.split(put_policy)[shlex.split(put_policy).index("--policy-document") + 1])
    assert document["Statement"][0]["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/web"
    assert "ecr:GetAuthorizationToken" in json.dumps(document)


def test_network_advice_lists_the_three_endpoints():
    reason = (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        "unable to retrieve ecr registry auth: service call has been retried 3 time(s): RequestError: send request "
        'failed caused by: Post "https://api.ecr.us-east-1.amazonaws.com/": dial tcp 10.0.0.1:443: i/o timeout'
    )
    finding = diagnose_task(stopped_task(container(), stop_code="TaskFailedToStart", stopped_reason=reason))
    assert finding is not None
    assert finding.cause == Cause.IMAGE_PULL_NETWORK
    joined = "\n".join(advice_for(finding).commands)
    for endpoint in (
        "com.amazonaws.us-east-1.ecr.api",
        "com.amazonaws.us-east-1.ecr.dkr",
        "com.amazonaws.us-east-1.s3",
    ):
        assert endpoint in joined


def test_event_advice_uses_the_service_and_primary_task_definition():
    message = (
        "(service web) was unable to place a task because no container instance met all of its requirements. "
        "The closest matching (container-instance 0f1e2d3c) has insufficient memory available."
    )
    [finding] = diagnose_service(service(events=[event(message)]))
    assert finding.cause == Cause.PLACEMENT_MEMORY
    assert any("--cluster prod" in command for command in advice_for(finding).commands)


def test_platform_mismatch_advice_says_build_for_the_task_s_architecture():
    reason = (
        "CannotPullContainerError: pull image manifest has been retried 7 time(s): image Manifest does not "
        "contain descriptor matching platform 'linux/amd64'"
    )
    finding = diagnose_task(stopped_task(container(reason=reason), stop_code="TaskFailedToStart"))
    assert finding is not None
    assert finding.cause == Cause.IMAGE_NOT_FOUND
    advice = advice_for(finding)
    assert "--platform" in advice.fix
    assert "taskDefinition.runtimePlatform" in advice.commands[0]


def test_rate_limit_advice_offers_a_pull_through_cache():
    reason = (
        "CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: failed open: "
        "unexpected status code https://registry-1.docker.io/v2/library/nginx/manifests/sha256:0: 429 Too Many "
        "Requests - Server message: toomanyrequests: You have reached your pull rate limit."
    )
    finding = diagnose_task(stopped_task(container(reason=reason), stop_code="TaskFailedToStart"))
    assert finding is not None
    assert finding.cause == Cause.CAPACITY_QUOTA
    assert "create-pull-through-cache-rule" in advice_for(finding).commands[0]


def test_a_deleted_target_group_is_not_advised_a_longer_grace_period():
    message = (
        "(service web) task set (ecs-svc/1) (task 0f1e) is not healthy in target-group (arn:aws:elasticloadbalancing:"
        "us-east-1:123456789012:targetgroup/web/0123)) due to TARGET GROUP IS NOT FOUND."
    )
    [finding] = diagnose_service(service(events=[event(message)]))
    assert finding.cause == Cause.HEALTH_CHECK_ELB
    advice = advice_for(finding)
    assert "no longer exists" in advice.fix
    assert not any("health-check-grace-period" in command for command in advice.commands)
