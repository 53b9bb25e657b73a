"""Every scenario end to end, as an operator lives it: the symptoms AWS shows, the diagnosis, the fix.

Each test reads the world only through boto3 (DescribeServices, ListTasks STOPPED + DescribeTasks,
CloudWatch Logs, ELBv2), then applies the scenario's fix by hand through boto3 and lets simulated time
run until every affected service is back at steady state.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from agent.diagnose import diagnose_service, dominant_cause
from agent.model import Cause
from agent.sim import SCENARIOS, Scenario, World
from agent.sim.rollout import breaker_threshold

TASK_ID = re.compile(r"^[0-9a-f]{32}$")
DEPLOYMENT_ID = re.compile(r"^ecs-svc/\d{19}$")


def _observe(world: World, scenario: Scenario, service: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ecs = world.client("ecs")
    described = ecs.describe_services(cluster=scenario.cluster, services=[service])["services"][0]
    arns = ecs.list_tasks(cluster=scenario.cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
    stopped = ecs.describe_tasks(cluster=scenario.cluster, tasks=arns[:100])["tasks"] if arns else []
    return described, stopped


def _log_lines(world: World, task: dict[str, Any]) -> list[str]:
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    group = "/ecs/" + task["group"].removeprefix("service:")
    events = world.client("logs").get_log_events(logGroupName=group, logStreamName=f"ecs/app/{task_id}")["events"]
    return [e["message"] for e in events]


# --- what each failure looks like, field by field -----------------------------------------------------


def _pull_failure(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del world
    task = stopped[0]
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(("CannotPullContainerError:", "ResourceInitializationError:"))
    assert "startedAt" not in task, "a task that never pulled its image never started"
    assert task["containers"][0]["reason"] == task["stoppedReason"]
    assert "exitCode" not in task["containers"][0]
    primary = described["deployments"][0]
    assert primary["status"] == "PRIMARY" and primary["rolloutState"] == "IN_PROGRESS"
    assert primary["failedTasks"] >= 3
    assert any("is unable to consistently start tasks successfully" in e["message"] for e in described["events"])


def _image_tag_missing(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    _pull_failure(world, described, stopped)
    image = f"{world.account_id}.dkr.ecr.us-east-1.amazonaws.com/web:v2"
    assert stopped[0]["stoppedReason"] == (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )


def _ecr_permission(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    _pull_failure(world, described, stopped)
    reason = stopped[0]["stoppedReason"]
    task_id = stopped[0]["taskArn"].rsplit("/", 1)[-1]
    assert reason.startswith("CannotPullContainerError: The task can\u2019t pull the image.")
    assert f"assumed-role/web-execution/{task_id} is not authorized to perform: ecr:BatchGetImage" in reason
    assert "arn:aws:ecr:us-east-1:123456789012:repository/web because no identity-based policy" in reason


def _oom(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del world, described
    task = stopped[0]
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["containers"][0]["exitCode"] == 137
    assert task["containers"][0]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert task["startedAt"] < task["stoppedAt"]


def _crash(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del described
    task = stopped[0]
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["containers"][0]["exitCode"] == 1
    assert "reason" not in task["containers"][0]
    lines = _log_lines(world, task)
    assert lines[0] == "Starting application"
    assert any("Field required" in line or "could not connect" in line for line in lines)


def _no_breaker(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del world
    task = stopped[0]
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch "
        "secret arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/database-url-Q2fLx7 from secrets "
        "manager: ResourceNotFoundException: Secrets Manager can't find the specified secret. status code: 400"
    )
    assert described["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": False, "rollback": False}
    primary, active = described["deployments"]
    assert primary["rolloutState"] == "IN_PROGRESS"
    assert primary["failedTasks"] > breaker_threshold(described["desiredCount"])
    assert active["status"] == "ACTIVE" and active["rolloutState"] == "COMPLETED"
    assert described["runningCount"] >= described["desiredCount"], "the old tasks keep serving"


def _entrypoint(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del described
    task = stopped[0]
    assert task["containers"][0]["exitCode"] == 255
    assert _log_lines(world, task) == ["exec /app/docker-entrypoint.sh: exec format error"]


def _placement(resource: str, desired: int = 6, running: int = 4) -> Any:
    def check(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
        del world
        assert stopped == []
        assert described["desiredCount"] == desired and described["runningCount"] == running
        pattern = (
            rf"^\(service {described['serviceName']}\) was unable to place a task because no container instance met "
            r"all of its requirements\. The closest matching \(container-instance [0-9a-f]{32}\) "
            rf"{re.escape(resource)} For more information, see the Troubleshooting section\.$"
        )
        placement = [e["message"] for e in described["events"] if "unable to place" in e["message"]]
        assert len(placement) == 1, "ECS does not repeat an identical problem event"
        assert re.match(pattern, placement[0])

    return check


def _health_cycling(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    group = described["loadBalancers"][0]["targetGroupArn"]
    task = next(t for t in stopped if t["stopCode"] == "ServiceSchedulerInitiated")
    assert task["stoppedReason"] == f"Task failed ELB health checks in (target-group {group})"
    assert task["containers"][0]["exitCode"] == 137
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    messages = [e["message"] for e in reversed(described["events"])]  # oldest first
    unhealthy = messages.index(
        f"(service search) (task {task_id}) (port 8080) is unhealthy in (target-group {group}) "
        "due to (reason Request timed out)."
    )
    cycle = messages[unhealthy : unhealthy + 8]
    assert any(m.startswith("(service search) has stopped") and task_id in m for m in cycle)
    assert any(m.startswith("(service search) deregistered") for m in cycle)
    assert any(re.match(r"\(service search, taskSet ecs-svc/\d{19}\) has begun draining connections", m) for m in cycle)
    assert any(m.startswith("(service search) has started") for m in cycle)
    assert any(m.startswith("(service search) registered") for m in messages[:unhealthy])
    health = world.client("elbv2").describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    assert {h["TargetHealth"]["State"] for h in health} <= {"healthy", "initial", "unhealthy", "draining"}


def _elb_killed(log_line: str) -> Any:
    """Tasks stopped by ELB health checks, whose logs show how far the app got."""

    def check(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
        group = described["loadBalancers"][0]["targetGroupArn"]
        killed = [t for t in stopped if t["stopCode"] == "ServiceSchedulerInitiated" and t["lastStatus"] == "STOPPED"]
        assert killed, "tasks are stopped by the scheduler"
        assert {t["stoppedReason"] for t in killed} == {f"Task failed ELB health checks in (target-group {group})"}
        assert all(t["containers"][0]["exitCode"] == 137 for t in killed), "not answering: killed after SIGTERM"
        assert described["healthCheckGracePeriodSeconds"] == 0
        assert log_line in _log_lines(world, killed[0])
        primary, active = described["deployments"]
        assert primary["rolloutState"] == "IN_PROGRESS" and active["rolloutState"] == "COMPLETED"

    return check


def _oom_at(limit: int) -> Any:
    def check(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
        _oom(world, described, stopped)
        assert {t["containers"][0]["memory"] for t in stopped} == {str(limit)}

    return check


def _right_sized(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    """The new revision's tasks run out of 512 MiB; Container Insights shows the old ones at 1.1 GiB."""
    _oom_at(512)(world, described, stopped)
    peak = world.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "peak",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "ECS/ContainerInsights",
                        "MetricName": "MemoryUtilized",
                        "Dimensions": [
                            {"Name": "ClusterName", "Value": "prod"},
                            {"Name": "ServiceName", "Value": "pricing"},
                        ],
                    },
                    "Period": 3600,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=world.now - timedelta(hours=1),
        EndTime=world.now,
    )["MetricDataResults"][0]["Values"]
    assert peak and max(peak) == 1100.0
    assert described["runningCount"] == 2, "the old revision keeps serving"


def _healthy(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    del world
    assert stopped == []
    assert described["runningCount"] == described["desiredCount"] == 2
    assert [d["rolloutState"] for d in described["deployments"]] == ["COMPLETED"]


def _storm(world: World, described: dict[str, Any], stopped: list[dict[str, Any]]) -> None:
    _pull_failure(world, described, stopped)
    survivor = world.service_state("payments", "webhooks")
    assert survivor.steady


SHAPES = {
    "healthy": _healthy,
    "image-tag-missing": _image_tag_missing,
    "ecr-permission-removed": _ecr_permission,
    "oom-exit-137": _oom,
    "crash-loop": _crash,
    "bad-entrypoint": _entrypoint,
    "placement-cpu": _placement("has insufficient CPU units available."),
    "placement-memory": _placement("has insufficient memory available."),
    "health-check-cycling": _health_cycling,
    "deployment-no-circuit-breaker": _no_breaker,
    "storm": _storm,
    "health-check-slow-warmup": _elb_killed("Warming caches"),
    "health-check-hang": _elb_killed("Waiting for the schema migration lock"),
    "placement-several-instances": _placement("has insufficient CPU units available.", desired=20, running=8),
    "oom-large-model": _oom_at(512),
    "oom-memory-leak": _oom_at(4096),
    "oom-after-right-sizing": _right_sized,
}


def test_every_scenario_has_a_shape_check() -> None:
    assert set(SHAPES) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_symptoms_diagnosis_and_fix(world: World, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.setup(world)

    for service in scenario.services:
        described, stopped = _observe(world, scenario, service)
        reasons = [t.get("stoppedReason", "") for t in stopped] + [
            c.get("reason", "") for t in stopped for c in t["containers"]
        ]
        text = " ".join([e["message"] for e in described["events"]] + reasons)
        for fragment in scenario.evidence:
            assert fragment in text, f"{service}: {fragment!r} not in the events or stop reasons"
        SHAPES[name](world, described, stopped)
        assert all(DEPLOYMENT_ID.match(d["id"]) for d in described["deployments"])
        assert all(TASK_ID.match(t["taskArn"].rsplit("/", 1)[-1]) for t in stopped)
        assert all(t["group"] == f"service:{service}" for t in stopped)
        assert all(
            t["startedBy"] in {d["id"] for d in described["deployments"]} or t["startedBy"].startswith("ecs-svc/")
            for t in stopped
        )

        findings = diagnose_service(described, stopped)
        if scenario.expected_cause is None:
            assert [f for f in findings if f.failure] == []
        else:
            assert dominant_cause(findings) is scenario.expected_cause, [f.summary for f in findings]

    before = len(world.requests.mutating())
    scenario.fix(world.client)
    assert (len(world.requests.mutating()) > before) is (scenario.expected_cause is not None)

    took = world.advance_until(
        lambda: all(world.service_state(scenario.cluster, s).steady for s in scenario.services),
        within=scenario.heal_within,
    )
    assert took <= scenario.heal_within
    for service in scenario.services:
        primary = world.describe_service(scenario.cluster, service)["deployments"][0]
        assert primary["status"] == "PRIMARY" and primary["rolloutState"] == "COMPLETED"


def test_no_breaker_fix_lets_ecs_roll_back_by_itself(world: World) -> None:
    scenario = SCENARIOS["deployment-no-circuit-breaker"]
    scenario.setup(world)
    scenario.fix(world.client)
    world.advance(30)

    described = world.describe_service("prod", "billing")
    rollback = described["deployments"][0]
    assert re.match(
        r"^ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/\d{19}\.$",
        rollback["rolloutStateReason"],
    )
    assert rollback["taskDefinition"].endswith("task-definition/billing:1")
    assert described["taskDefinition"].endswith("task-definition/billing:1")
    messages = [e["message"] for e in described["events"]]
    assert any(
        re.match(r"^\(service billing\) \(deployment ecs-svc/\d{19}\) deployment failed: tasks failed to start\.$", m)
        for m in messages
    )
    assert any(re.match(r"^\(service billing\) rolling back to deployment ecs-svc/\d{19}\.$", m) for m in messages)
    findings = diagnose_service(described, world.stopped_tasks("prod", "billing"))
    assert Cause.DEPLOYMENT_CIRCUIT_BREAKER in {f.cause for f in findings}


def test_healthy_baseline_stays_healthy_for_hours(world: World) -> None:
    scenario = SCENARIOS["healthy"]
    scenario.setup(world)
    events_before = world.describe_service("prod", "web")["events"]
    world.advance(3 * 3600)
    described = world.describe_service("prod", "web")
    assert world.service_state("prod", "web").steady
    assert described["events"] == events_before
    assert world.stopped_tasks("prod", "web") == []
    assert [f for f in diagnose_service(described, []) if f.failure] == []
