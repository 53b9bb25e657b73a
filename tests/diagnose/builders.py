"""ECS objects shaped exactly as DescribeTasks / DescribeServices return them, for diagnosis tests."""

from __future__ import annotations

from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER = "prod"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"


def task_definition_arn(family: str = "web", revision: int = 42) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}"


def container(
    name: str = "app", *, exit_code: int | None = None, reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "lastStatus": "STOPPED", **extra}
    if exit_code is not None:
        out["exitCode"] = exit_code
    if reason is not None:
        out["reason"] = reason
    return out


def stopped_task(
    *containers: dict[str, Any],
    stop_code: str = "EssentialContainerExited",
    stopped_reason: str = "Essential container in task exited",
    task_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    service: str = "web",
    started_by: str = "ecs-svc/1111111111111111111",
    revision: int = 42,
    started_at: str = "2026-04-19T03:10:00+00:00",
    stopped_at: str = "2026-04-19T03:12:00+00:00",
) -> dict[str, Any]:
    return {
        "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{task_id}",
        "clusterArn": CLUSTER_ARN,
        "taskDefinitionArn": task_definition_arn("web", revision),
        "group": f"service:{service}",
        "startedBy": started_by,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": stop_code,
        "stoppedReason": stopped_reason,
        "startedAt": started_at,
        "stoppedAt": stopped_at,
        "containers": list(containers) or [container()],
    }


def event(message: str, event_id: str = "7e0f6a52-0000-4000-8000-000000000001") -> dict[str, Any]:
    return {"id": event_id, "createdAt": "2026-04-19T03:12:30+00:00", "message": message}


def deployment(
    deployment_id: str = "ecs-svc/2222222222222222222",
    *,
    status: str = "PRIMARY",
    rollout_state: str = "IN_PROGRESS",
    reason: str = "ECS deployment ecs-svc/2222222222222222222 in progress.",
    failed_tasks: int = 0,
    revision: int = 43,
) -> dict[str, Any]:
    return {
        "id": deployment_id,
        "status": status,
        "taskDefinition": task_definition_arn("web", revision),
        "desiredCount": 4,
        "runningCount": 0,
        "failedTasks": failed_tasks,
        "rolloutState": rollout_state,
        "rolloutStateReason": reason,
        "createdAt": "2026-04-19T03:00:00+00:00",
        "updatedAt": "2026-04-19T03:12:00+00:00",
    }


def service(
    *,
    events: list[dict[str, Any]] | None = None,
    deployments: list[dict[str, Any]] | None = None,
    breaker: bool = False,
    rollback: bool = False,
    name: str = "web",
) -> dict[str, Any]:
    return {
        "serviceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/{name}",
        "serviceName": name,
        "clusterArn": CLUSTER_ARN,
        "status": "ACTIVE",
        "desiredCount": 4,
        "runningCount": 0,
        "taskDefinition": task_definition_arn("web", 43),
        "healthCheckGracePeriodSeconds": 0,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": breaker, "rollback": rollback},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        "events": events or [],
        "deployments": deployments or [],
    }
