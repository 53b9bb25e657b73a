"""The world's records as ECS shows them: tasks as DescribeTasks, deployments as DescribeServices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.sim.moto_bridge import ContainerView, TaskView
from agent.sim.state import RUNNING, STOPPED, SimService, SimTask

if TYPE_CHECKING:
    from agent.sim.moto_bridge import TaskDefinitionView

FARGATE_PLATFORM_VERSION = "1.4.0"


def task_view(task: SimTask, *, container_instance_arn: str | None) -> TaskView:
    fargate = task.launch_type == "FARGATE"
    attachments = list(task.attachments)
    if attachments and task.last_status == STOPPED:
        attachments = [{**a, "status": "DELETED"} for a in attachments]
    interfaces: tuple[dict[str, Any], ...] = ()
    if attachments:
        interfaces = ({"attachmentId": attachments[0]["id"], "privateIpv4Address": task.private_ip},)
    containers = tuple(
        ContainerView(
            name=c.name,
            container_arn=c.container_arn,
            image=c.image,
            last_status=c.last_status,
            runtime_id=c.runtime_id if task.last_status != "PROVISIONING" and task.pull_stopped_at else None,
            image_digest=c.image_digest if task.pull_stopped_at else None,
            exit_code=c.exit_code,
            reason=c.reason,
            cpu=str(c.cpu),
            memory=str(c.memory) if c.memory is not None else None,
            memory_reservation=str(c.memory_reservation) if c.memory_reservation is not None else None,
            network_bindings=(
                (
                    {
                        "bindIP": "0.0.0.0",  # noqa: S104 - what ECS reports for a bridge-mode binding
                        "containerPort": c.container_port,
                        "hostPort": c.host_port,
                        "protocol": "tcp",
                    },
                )
                if c.host_port and c.last_status == RUNNING
                else ()
            ),
            network_interfaces=interfaces,
            health_status="UNKNOWN",
        )
        for c in task.containers
    )
    return TaskView(
        cluster=task.cluster,
        task_id=task.task_id,
        task_definition_arn=task.task_definition_arn,
        group=task.group,
        started_by=task.deployment_id,
        launch_type=task.launch_type,
        capacity_provider_name=task.capacity_provider,
        last_status=task.last_status,
        desired_status=task.desired_status,
        containers=containers,
        cpu=task.cpu,
        memory=task.memory,
        created_at=task.created_at,
        version=task.version,
        availability_zone=task.availability_zone,
        attachments=tuple(attachments),
        container_instance_arn=container_instance_arn,
        platform_version=FARGATE_PLATFORM_VERSION if fargate else None,
        platform_family="Linux" if fargate else None,
        connectivity="CONNECTED" if task.connectivity_at else None,
        connectivity_at=task.connectivity_at,
        pull_started_at=task.pull_started_at,
        pull_stopped_at=task.pull_stopped_at,
        started_at=task.started_at,
        stopping_at=task.stopping_at,
        stopped_at=task.stopped_at if task.last_status == STOPPED else None,
        execution_stopped_at=task.execution_stopped_at,
        stop_code=task.stop_code,
        stopped_reason=task.stopped_reason,
        health_status="UNKNOWN",
    )


def deployment_dicts(service: SimService) -> list[dict[str, Any]]:
    """`deployments` as DescribeServices shows them: PRIMARY first, counts from the tasks."""
    rendered = []
    for deployment in service.deployments:
        mine = [t for t in service.tasks.values() if t.deployment_id == deployment.id and t.active]
        running = sum(1 for t in mine if t.last_status == RUNNING)
        pending = sum(1 for t in mine if t.pending)
        desired = service.desired_count if deployment.status == "PRIMARY" else len(mine)
        item: dict[str, Any] = {
            "id": deployment.id,
            "status": deployment.status,
            "taskDefinition": deployment.task_definition_arn,
            "desiredCount": 0 if service.deleted else desired,
            "pendingCount": pending,
            "runningCount": running,
            "failedTasks": deployment.failed_tasks,
            "createdAt": deployment.created_at,
            "updatedAt": deployment.updated_at,
            "rolloutState": deployment.rollout_state,
            "rolloutStateReason": deployment.rollout_state_reason,
        }
        if service.capacity_provider:
            item["capacityProviderStrategy"] = [{"capacityProvider": service.capacity_provider, "weight": 1, "base": 0}]
        else:
            item["launchType"] = service.launch_type
        if service.launch_type == "FARGATE":
            item["platformVersion"] = FARGATE_PLATFORM_VERSION
            item["platformFamily"] = "Linux"
        if service.network_configuration:
            item["networkConfiguration"] = service.network_configuration
        rendered.append(item)
    return rendered


def memory_limit(definition: TaskDefinitionView, container_name: str, *, fargate: bool) -> int | None:
    """The hard memory limit (MiB) a container is killed at: its own `memory`, else the task's on
    Fargate (or whenever the task sets one); None when only a soft reservation applies."""
    container = next((c for c in definition.containers if c.name == container_name), None)
    if container is not None and container.memory is not None:
        return container.memory
    if definition.memory is not None and (fargate or len(definition.containers) == 1):
        return definition.memory
    return None
