"""The runtime state the world owns and moto lacks: tasks, deployments, service events, instances.

Plain mutable records; the scheduler and the task lifecycle change them, the projection writes them
onto moto for clients to read. Times are simulated (`world.now`), always timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from agent.sim.health import HealthCheck
    from agent.sim.placement import TaskNeeds
    from agent.sim.profiles import ContainerPlan

# lastStatus values, in the order a task goes through them.
PROVISIONING = "PROVISIONING"
PENDING = "PENDING"
RUNNING = "RUNNING"
DEACTIVATING = "DEACTIVATING"
STOPPING = "STOPPING"
DEPROVISIONING = "DEPROVISIONING"
STOPPED = "STOPPED"
NOT_YET_RUNNING = frozenset({PROVISIONING, PENDING})

PRIMARY = "PRIMARY"
ACTIVE = "ACTIVE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"


@dataclass(slots=True)
class SimContainer:
    name: str
    image: str
    container_arn: str
    runtime_id: str
    image_digest: str | None
    essential: bool
    cpu: int
    memory: int | None
    memory_reservation: int | None
    container_port: int | None
    host_port: int | None
    last_status: str = PENDING
    exit_code: int | None = None
    reason: str | None = None


@dataclass(slots=True)
class Target:
    """The task's registration in a target group."""

    target_group_arn: str
    target_id: str
    port: int
    registered_at: datetime
    state: str = "initial"  # initial | healthy | unhealthy | draining


@dataclass(slots=True)
class SimTask:
    task_id: str
    arn: str
    cluster: str
    service: str
    deployment_id: str
    task_definition_arn: str
    launch_type: str | None
    capacity_provider: str | None
    cpu: str | None  # as the task definition says it
    memory: str | None
    containers: list[SimContainer]
    created_at: datetime
    availability_zone: str
    private_ip: str
    attachments: list[dict[str, Any]]
    # What will happen, decided at creation from the image, the role and the profile.
    pending_at: datetime
    pull_started_at_planned: datetime
    start_failure: str | None  # the stop reason when the task will fail to start
    start_failure_at: datetime | None
    running_at: datetime | None
    plan: ContainerPlan | None
    log_group: str | None = None
    log_stream_prefix: str | None = None
    container_instance_id: str | None = None
    ec2_instance_id: str | None = None
    needs: TaskNeeds | None = None
    # What has happened.
    last_status: str = PROVISIONING
    desired_status: str = "RUNNING"
    connectivity_at: datetime | None = None
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    stopped_at: datetime | None = None
    execution_stopped_at: datetime | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    version: int = 1
    ready_at: datetime | None = None
    exit_at: datetime | None = None
    health_check: HealthCheck | None = None
    grace_period_seconds: int = 0
    drain_seconds: int = 0
    target: Target | None = None
    exited_target: str | None = None  # the target group it left when its container exited
    unhealthy_at: datetime | None = None
    healthy_at: datetime | None = None
    health_stop_at: datetime | None = None
    drain_until: datetime | None = None
    kill_at: datetime | None = None  # when a stop request ends the process
    final_at: datetime | None = None  # when a stopping task reaches STOPPED
    kill_exit_code: int = 0
    dirty: bool = True
    published_status: str | None = None

    @property
    def group(self) -> str:
        return f"service:{self.service}"

    @property
    def active(self) -> bool:
        """Still wanted: counts toward the service's tasks."""
        return self.desired_status == "RUNNING"

    @property
    def running(self) -> bool:
        return self.active and self.last_status == RUNNING

    @property
    def pending(self) -> bool:
        return self.active and self.last_status in NOT_YET_RUNNING

    @property
    def healthy(self) -> bool:
        """Running and, behind a load balancer, passing its health checks."""
        return self.running and (self.target is None or self.target.state == "healthy")

    @property
    def holds_resources(self) -> bool:
        return self.last_status != STOPPED


@dataclass(slots=True)
class SimDeployment:
    id: str
    task_definition_arn: str
    status: str
    desired_count: int
    created_at: datetime
    updated_at: datetime
    rollout_state: str
    rollout_state_reason: str
    failed_tasks: int = 0


@dataclass(slots=True)
class SimService:
    cluster: str
    name: str
    arn: str
    launch_type: str | None
    capacity_provider: str | None
    task_definition_arn: str
    desired_count: int
    grace_period: int
    deployment_configuration: dict[str, Any]
    load_balancer: dict[str, Any] | None  # the first of `loadBalancers`
    network_configuration: dict[str, Any]
    created_at: datetime
    deployments: list[SimDeployment] = field(default_factory=list)
    tasks: dict[str, SimTask] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first
    start_failures: int = 0
    next_launch_at: datetime | None = None
    last_completed: tuple[str, str] | None = None  # (deployment id, task definition ARN)
    steady: bool = False
    deleted: bool = False
    recent_problems: dict[str, datetime] = field(default_factory=dict)  # message -> when first shown
    dirty: bool = True
    wake_at: datetime | None = None  # nothing to do before this

    @property
    def primary(self) -> SimDeployment:
        return self.deployments[0]


@dataclass(slots=True)
class SimInstance:
    """An EC2 instance of a capacity provider's Auto Scaling group, as ECS knows it."""

    ec2_instance_id: str
    cluster: str
    asg_name: str
    first_seen: datetime
    cpu: int
    memory: int
    container_instance_id: str | None = None  # set once the agent registered it
    next_host_port: int = 32768
