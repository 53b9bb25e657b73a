"""Service events and deployments: one finding per problem, none for routine lines."""

from __future__ import annotations

import pytest

from agent.diagnose import diagnose_service
from agent.model import Cause, SourceKind
from tests.diagnose.builders import container, deployment, event, service, stopped_task

TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
ROUTINE = [
    "(service web) has reached a steady state.",
    "(service web) has started 2 tasks: (task 0a1b2c3d) (task 4e5f6a7b).",
    "(service web) has stopped 1 running tasks: (task 0a1b2c3d).",
    f"(service web) registered 1 targets in (target-group {TARGET_GROUP})",
    f"(service web) deregistered 1 targets in (target-group {TARGET_GROUP})",
    "(service web) has begun draining connections on 1 tasks.",
    "(service web, taskSet ecs-svc/1111111111111111111) has begun draining connections on 1 tasks.",
    "(service web) (deployment ecs-svc/2222222222222222222) deployment completed.",
]


@pytest.mark.parametrize("message", ROUTINE, ids=lambda m: m[14:50])
def test_routine_events_get_no_finding(message):
    assert diagnose_service(service(events=[event(message)])) == []


def test_guide_cpu_placement_event():
    message = (
        "service my-service was unable to place a task because no container instance met all of its requirements. "
        "The closest matching container instance doesn't have enough CPU units available."
    )
    [finding] = diagnose_service(service(events=[event(message)]))
    assert finding.cause == Cause.PLACEMENT_CPU
    assert finding.source == "7e0f6a52-0000-4000-8000-000000000001"
    assert finding.source_kind == SourceKind.SERVICE_EVENT


def test_embedded_task_error_is_a_pull_failure_not_a_placement_failure():
    message = (
        "(service web) was unable to place a task. Reason: CannotPullContainerError: pull image manifest has been "
        "retried 5 time(s): failed to resolve ref 123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v9: "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v9: not found."
    )
    [finding] = diagnose_service(service(events=[event(message)]))
    assert finding.cause == Cause.IMAGE_NOT_FOUND


def test_service_name_is_never_read_as_part_of_the_message():
    message = "(service oom-secrets-pull-worker) has reached a steady state."
    assert diagnose_service(service(name="oom-secrets-pull-worker", events=[event(message)])) == []


def test_unable_to_start_takes_the_cause_of_the_stopped_tasks():
    stopped = [
        stopped_task(
            container(exit_code=137, reason="OutOfMemoryError: Container killed due to memory usage"),
            task_id=f"{i:032x}",
        )
        for i in range(3)
    ]
    findings = diagnose_service(
        service(events=[event("(service web) is unable to consistently start tasks successfully.")]), stopped
    )
    event_findings = [f for f in findings if f.source_kind == SourceKind.SERVICE_EVENT]
    assert [f.cause for f in event_findings] == [Cause.OOM]


def test_unable_to_start_without_tasks_is_unknown_but_reported():
    [finding] = diagnose_service(
        service(events=[event("(service web) is unable to consistently start tasks successfully.")])
    )
    assert finding.cause == Cause.UNKNOWN
    assert finding.failure


def test_failed_deployment_is_a_circuit_breaker_finding():
    failed = deployment(
        rollout_state="FAILED",
        reason="ECS deployment circuit breaker: tasks failed to start.",
        failed_tasks=3,
    )
    [finding] = diagnose_service(service(deployments=[failed], breaker=True, rollback=True))
    assert finding.cause == Cause.DEPLOYMENT_CIRCUIT_BREAKER
    assert finding.source == "ecs-svc/2222222222222222222"
    assert finding.source_kind == SourceKind.DEPLOYMENT
    assert "rolloutStateReason 'ECS deployment circuit breaker: tasks failed to start.'" in finding.evidence


def test_rollback_deployment_alone_is_reported_once():
    rolling_back = deployment(
        "ecs-svc/3333333333333333333",
        reason="ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1111111111111111111.",
        revision=42,
    )
    [finding] = diagnose_service(service(deployments=[rolling_back], breaker=True, rollback=True))
    assert finding.cause == Cause.DEPLOYMENT_CIRCUIT_BREAKER
    assert "ecs-svc/1111111111111111111" in finding.summary


def test_failed_and_rollback_deployments_give_one_finding():
    failed = deployment(
        status="ACTIVE",
        rollout_state="FAILED",
        reason="ECS deployment circuit breaker: tasks failed to start.",
    )
    rolling_back = deployment(
        "ecs-svc/3333333333333333333",
        reason="ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1111111111111111111.",
    )
    findings = diagnose_service(service(deployments=[rolling_back, failed], breaker=True, rollback=True))
    assert [f.source for f in findings] == ["ecs-svc/2222222222222222222"]


def test_failing_deployment_without_breaker_names_the_tasks_cause():
    failing = deployment(failed_tasks=6)
    old = deployment("ecs-svc/1111111111111111111", status="ACTIVE", rollout_state="COMPLETED", reason="", revision=42)
    crashed = [
        stopped_task(container(exit_code=1), task_id=f"{i:032x}", started_by="ecs-svc/2222222222222222222", revision=43)
        for i in range(3)
    ]
    findings = diagnose_service(service(deployments=[failing, old]), crashed)
    [deploy_finding] = [f for f in findings if f.source_kind == SourceKind.DEPLOYMENT]
    assert deploy_finding.cause == Cause.APP_CRASH
    assert "no circuit breaker will stop it" in deploy_finding.summary
    assert deploy_finding.subject.circuit_breaker is False
    assert deploy_finding.subject.failed_tasks == 6


def test_healthy_deployments_get_no_finding():
    done = deployment(rollout_state="COMPLETED", reason="ECS deployment ecs-svc/2222222222222222222 completed.")
    assert diagnose_service(service(deployments=[done])) == []
