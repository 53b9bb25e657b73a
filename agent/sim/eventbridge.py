"""ECS's EventBridge events (`source: aws.ecs`), shaped as AWS documents them: pure builders.

`ECS Task State Change` mirrors DescribeTasks with ISO timestamps and a `version`; `ECS Service Action`
and `ECS Deployment State Change` carry `eventType`/`eventName` and the fields their event names use.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from agent.sim.moto_bridge import TaskView

SOURCE = "aws.ecs"
TASK_STATE_CHANGE = "ECS Task State Change"
SERVICE_ACTION = "ECS Service Action"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"

Entry = dict[str, Any]


def iso(at: datetime) -> str:
    """`2026-04-19T03:12:00.123Z`, the way ECS writes times inside events."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _entry(detail_type: str, resources: list[str], detail: Mapping[str, Any], at: datetime) -> Entry:
    return {
        "Source": SOURCE,
        "DetailType": detail_type,
        "Resources": resources,
        "Detail": json.dumps(detail),
        "Time": at,
    }


def task_state_change(view: TaskView, *, task_arn: str, cluster_arn: str, at: datetime) -> Entry:
    times = {
        "connectivityAt": view.connectivity_at,
        "createdAt": view.created_at,
        "executionStoppedAt": view.execution_stopped_at,
        "pullStartedAt": view.pull_started_at,
        "pullStoppedAt": view.pull_stopped_at,
        "startedAt": view.started_at,
        "stoppingAt": view.stopping_at,
        "stoppedAt": view.stopped_at,
    }
    containers = []
    for c in view.containers:
        container: dict[str, Any] = {
            "containerArn": c.container_arn,
            "lastStatus": c.last_status,
            "name": c.name,
            "image": c.image,
            "taskArn": task_arn,
            "networkInterfaces": list(c.network_interfaces),
            "cpu": c.cpu,
        }
        optional = {
            "imageDigest": c.image_digest,
            "runtimeId": c.runtime_id,
            "exitCode": c.exit_code,
            "reason": c.reason,
            "memory": c.memory,
            "memoryReservation": c.memory_reservation,
        }
        container.update({k: v for k, v in optional.items() if v is not None})
        if c.network_bindings:
            container["networkBindings"] = list(c.network_bindings)
        containers.append(container)
    detail: dict[str, Any] = {
        "attachments": list(view.attachments),
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": view.availability_zone,
        "clusterArn": cluster_arn,
        "containers": containers,
        "cpu": view.cpu,
        "desiredStatus": view.desired_status,
        "group": view.group,
        "lastStatus": view.last_status,
        "launchType": view.launch_type,
        "memory": view.memory,
        "overrides": {"containerOverrides": [{"name": c.name} for c in view.containers]},
        "startedBy": view.started_by,
        "taskArn": task_arn,
        "taskDefinitionArn": view.task_definition_arn,
        "updatedAt": iso(at),
        "version": view.version,
    }
    detail.update({key: iso(value) for key, value in times.items() if value is not None})
    optional_fields = {
        "capacityProviderName": view.capacity_provider_name,
        "connectivity": view.connectivity,
        "containerInstanceArn": view.container_instance_arn,
        "platformVersion": view.platform_version,
        "stopCode": view.stop_code,
        "stoppedReason": view.stopped_reason,
    }
    detail.update({k: v for k, v in optional_fields.items() if v})
    return _entry(TASK_STATE_CHANGE, [task_arn], detail, at)


def service_action(
    *,
    service_arn: str,
    cluster_arn: str,
    event_type: str,
    event_name: str,
    at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> Entry:
    detail: dict[str, Any] = {"eventType": event_type, "eventName": event_name, "clusterArn": cluster_arn}
    detail.update(extra or {})
    detail["createdAt"] = iso(at)
    return _entry(SERVICE_ACTION, [service_arn], detail, at)


def deployment_state_change(
    *, service_arn: str, event_type: str, event_name: str, deployment_id: str, reason: str, at: datetime
) -> Entry:
    detail = {
        "eventType": event_type,
        "eventName": event_name,
        "deploymentId": deployment_id,
        "updatedAt": iso(at),
        "reason": reason,
    }
    return _entry(DEPLOYMENT_STATE_CHANGE, [service_arn], detail, at)
