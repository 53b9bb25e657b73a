"""Frozen types shared by every stage: what a diagnosis says about one ECS item."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime


class Cause(StrEnum):
    """Root causes, as stable identifiers (the product's contract)."""

    IMAGE_PULL_AUTH = "image_pull_auth"
    IMAGE_NOT_FOUND = "image_not_found"
    IMAGE_PULL_NETWORK = "image_pull_network"
    OOM = "oom"
    APP_CRASH = "app_crash"
    ENTRYPOINT_ERROR = "entrypoint_error"
    SECRETS_ERROR = "secrets_error"
    LOG_CONFIG_ERROR = "log_config_error"
    VOLUME_ERROR = "volume_error"
    PLACEMENT_CPU = "placement_cpu"
    PLACEMENT_MEMORY = "placement_memory"
    PLACEMENT_PORTS = "placement_ports"
    PLACEMENT_ATTRIBUTES = "placement_attributes"
    CAPACITY_QUOTA = "capacity_quota"
    HEALTH_CHECK_ELB = "health_check_elb"
    HEALTH_CHECK_CONTAINER = "health_check_container"
    DEPLOYMENT_CIRCUIT_BREAKER = "deployment_circuit_breaker"
    SPOT_INTERRUPTION = "spot_interruption"
    INSTANCE_DRAIN_OR_HOST_FAILURE = "instance_drain_or_host_failure"
    TIMEOUT_START = "timeout_start"
    NETWORK_ENI = "network_eni"
    IAM_PERMISSION = "iam_permission"
    UNKNOWN = "unknown"
    SCALE_IN_OR_DEPLOY = "scale_in_or_deploy"
    USER_STOP = "user_stop"

    @property
    def is_failure(self) -> bool:
        return self not in BENIGN_CAUSES


BENIGN_CAUSES = frozenset({Cause.SCALE_IN_OR_DEPLOY, Cause.USER_STOP})


class Risk(StrEnum):
    """Configurations that are not failing yet but make failures worse (the prevention checklist)."""

    CIRCUIT_BREAKER_DISABLED = "circuit_breaker_disabled"
    NO_GRACE_PERIOD_BEHIND_LOAD_BALANCER = "no_grace_period_behind_load_balancer"
    MUTABLE_IMAGE_TAG = "mutable_image_tag"


class SourceKind(StrEnum):
    """Which kind of ECS item a finding is about."""

    TASK = "task"
    SERVICE_EVENT = "serviceEvent"
    DEPLOYMENT = "deployment"
    RUN_TASK_FAILURE = "runTaskFailure"


@dataclass(frozen=True, slots=True)
class Advice:
    """The fix in words, and the `aws` CLI commands an operator would run, names filled in."""

    fix: str
    commands: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"fix": self.fix, "commands": list(self.commands)}


class Subject(NamedTuple):
    """What a finding is about, as typed facts: the names an operator types and what later stages
    reason about (how long the task ran, which revision was last good, whether a breaker is on).

    An immutable tuple rather than a frozen dataclass: one is built for every stopped task of every
    pass, and a tuple is several times cheaper to make.
    """

    cluster: str
    service: str | None = None
    region: str | None = None
    task_arn: str | None = None
    task_definition: str | None = None  # family:revision
    container: str | None = None
    image: str | None = None
    exit_code: int | None = None
    run_seconds: float | None = None
    started_by: str | None = None  # the deployment that started the task
    target_group: str | None = None
    message: str = ""  # the message that decided the cause, for details such as a secret ARN
    last_good_task_definition: str | None = None  # family:revision of the last COMPLETED deployment
    rollout_state: str | None = None
    failed_tasks: int | None = None
    circuit_breaker: bool | None = None
    rollback: bool | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosed ECS item: its root cause, the evidence that decided it, and what it is about.

    The fix is derived from the cause and the subject (`agent.diagnose.advice.advise`) when someone
    reads it, not on every pass: most findings of a large fleet are counted, few are shown.
    """

    cause: Cause
    source: str
    source_kind: SourceKind
    subject: Subject
    evidence: tuple[str, ...]
    summary: str
    occurred_at: datetime | None = None
    # For `unknown`: the causes it was nearest to, each with the wording that would prove it.
    nearest: tuple[tuple[Cause, str], ...] = ()

    def __post_init__(self) -> None:
        # A summary is one line whatever names and messages went into it.
        if not self.summary.isprintable() or "  " in self.summary:
            object.__setattr__(self, "summary", " ".join(self.summary.split()))

    @property
    def failure(self) -> bool:
        return self.cause.is_failure

    @property
    def cluster(self) -> str:
        return self.subject.cluster

    @property
    def service(self) -> str | None:
        return self.subject.service


@dataclass(frozen=True, slots=True)
class RiskFinding:
    """A prevention finding: a service configured so that the next failure will hurt more."""

    risk: Risk
    subject: Subject
    evidence: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service as observed in one pass: the API's own objects, plus what was read for it.

    Raw dicts are kept as ECS returns them so every stage reads the same facts; the properties
    below are the few readings every stage needs.
    """

    cluster: str
    name: str
    description: Mapping[str, Any]  # DescribeServices, with tags
    tags: Mapping[str, str]
    stopped_tasks: tuple[Mapping[str, Any], ...] = ()
    task_definitions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # family:revision -> definition
    target_groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # arn -> DescribeTargetGroups item
    capacity_providers: tuple[Mapping[str, Any], ...] = ()  # DescribeCapacityProviders items in use
    auto_scaling_groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> ASG
    # DescribeContainerInstances items of the cluster (registered and remaining CPU and memory), read for
    # troubled services on EC2 capacity.
    container_instances: tuple[Mapping[str, Any], ...] = ()
    # Container Insights: the highest MemoryUtilized (MiB) of one of the service's tasks in the last
    # hours, read for services whose tasks were OOM-killed in clusters with Container Insights on.
    memory_peak_mib: float | None = None
    cluster_paused: str | None = None  # the reason, from the cluster's pause tag

    @property
    def arn(self) -> str:
        return str(self.description.get("serviceArn") or "")

    @property
    def desired_count(self) -> int:
        return int(self.description.get("desiredCount") or 0)

    @property
    def running_count(self) -> int:
        return int(self.description.get("runningCount") or 0)

    @property
    def deployments(self) -> tuple[Mapping[str, Any], ...]:
        deployments = self.description.get("deployments")
        return tuple(d for d in deployments if isinstance(d, dict)) if isinstance(deployments, list) else ()

    @property
    def primary(self) -> Mapping[str, Any] | None:
        return next((d for d in self.deployments if d.get("status") == "PRIMARY"), None)

    @property
    def task_definition(self) -> str:
        """`family:revision` the service runs (its PRIMARY deployment's)."""
        primary = self.primary
        arn = str((primary or {}).get("taskDefinition") or self.description.get("taskDefinition") or "")
        return arn.rsplit("/", 1)[-1]

    @property
    def steady(self) -> bool:
        """Running what it should, with the rollout finished: nothing for an agent to do."""
        primary = self.primary
        return (
            self.running_count == self.desired_count
            and len(self.deployments) == 1
            and (primary is None or primary.get("rolloutState") in (None, "COMPLETED"))
        )

    @property
    def launch_type(self) -> str | None:
        value = self.description.get("launchType")
        if isinstance(value, str) and value:
            return value
        strategy = self.description.get("capacityProviderStrategy")
        if isinstance(strategy, list) and strategy:
            return (
                "FARGATE" if all(str(s.get("capacityProvider", "")).startswith("FARGATE") for s in strategy) else "EC2"
            )
        return None
