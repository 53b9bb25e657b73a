"""Everything that touches moto's internals, in one module, so that a moto upgrade touches one file.

The rest of `agent.sim` sees typed views (frozen dataclasses) and plain functions: it reads what clients
configured through the public APIs (services, task definitions, Auto Scaling groups, IAM policies, ECR
tags, target-group settings) and writes the runtime that moto lacks (tasks, counts, deployments,
events, container instances, target health, log lines, EventBridge events) straight onto moto's model
objects, which moto then serialises like any other (its serialiser reads any attribute the botocore
output shape names). Written against moto 5.2.5. moto's models keep their fields as dynamic
attributes, so its objects appear here as `MotoObject` (Any), and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from moto.autoscaling.models import autoscaling_backends
from moto.core.base_backend import BackendDict
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ecr.models import ecr_backends
from moto.ecs.models import Container, Task, ecs_backends
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup, elbv2_backends
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.iam.models import get_account_id_from, iam_backends
from moto.logs.models import logs_backends
from moto.moto_api import state_manager
from moto.moto_api._internal import mock_random
from moto.moto_api._internal.managed_state_model import ManagedState
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs.models import sqs_backends
from moto.sts.models import sts_backends

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

# One of moto's model or backend objects, whose fields are dynamic attributes.
MotoObject: TypeAlias = Any

ACCOUNT_ID: str = DEFAULT_ACCOUNT_ID
_PARTITION = "aws"
# A task's state is the world's to set: moto's own model would drift it to STOPPED on every describe.
_FROZEN_TRANSITIONS: list[tuple[str | None, str]] = [("PROVISIONING", "PROVISIONING")]
_NEVER = {"progression": "manual", "times": 10**12}


# --- the server ----------------------------------------------------------------------------------------


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without a log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        del code, size


_app: list[WSGIApplication] = []


def wsgi_app() -> WSGIApplication:
    """moto's WSGI application serving every AWS service on one port (one per process: it holds no
    state of its own, and building its per-service apps is slow)."""
    if not _app:
        _app.append(DomainDispatcherApplication(create_backend_app))
    return _app[0]


def reset(seed: int) -> None:
    """Forget every resource of every service, and make moto's own random ids reproducible."""
    BackendDict.reset()
    _backends.clear()
    mock_random.seed(seed)
    # moto's default target input drops `account`; EventBridge delivers the whole envelope.
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = (
        '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
        '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
        '"detail": <detail>}'
    )
    state_manager.set_transition(model_name="ecs::task", transition=_NEVER)


# --- typed views -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """A service as clients configured it (CreateService / UpdateService), read from moto."""

    cluster: str
    name: str
    arn: str
    status: str
    task_definition: str  # as stored: an ARN, or `family:revision` verbatim after UpdateService
    desired_count: int
    grace_period: int | None
    deployment_configuration: dict[str, Any]
    load_balancers: list[dict[str, Any]]
    launch_type: str | None
    capacity_provider_strategy: list[dict[str, Any]]
    network_configuration: dict[str, Any]
    tags: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class ContainerDefinition:
    name: str
    image: str
    essential: bool
    cpu: int
    memory: int | None  # hard limit (MiB)
    memory_reservation: int | None
    port_mappings: list[dict[str, Any]]
    log_options: dict[str, str] | None  # awslogs options, when the awslogs driver is used


@dataclass(frozen=True, slots=True)
class TaskDefinitionView:
    arn: str
    family: str
    revision: int
    status: str
    cpu: int | None
    memory: int | None
    network_mode: str
    execution_role_arn: str | None
    containers: tuple[ContainerDefinition, ...]
    raw: dict[str, Any]  # every field a fingerprint compares


@dataclass(frozen=True, slots=True)
class AsgView:
    name: str
    arn: str
    min_size: int
    max_size: int
    desired: int
    instance_ids: tuple[str, ...]  # InService instances, oldest first


@dataclass(frozen=True, slots=True)
class CapacityProviderView:
    name: str
    arn: str
    asg_arn: str
    managed_scaling: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TargetGroupView:
    arn: str
    name: str
    port: int
    target_type: str
    interval_seconds: int
    timeout_seconds: int
    healthy_threshold: int
    unhealthy_threshold: int
    deregistration_delay: int
    path: str | None


@dataclass(frozen=True, slots=True)
class ContainerView:
    """One container of a task, exactly the fields DescribeTasks shows."""

    name: str
    container_arn: str
    image: str
    last_status: str
    runtime_id: str | None = None
    image_digest: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    cpu: str = "0"
    memory: str | None = None
    memory_reservation: str | None = None
    network_bindings: tuple[dict[str, Any], ...] = ()
    network_interfaces: tuple[dict[str, Any], ...] = ()
    health_status: str = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as DescribeTasks shows it; the world decides every field."""

    cluster: str
    task_id: str
    task_definition_arn: str
    group: str
    started_by: str
    launch_type: str | None
    capacity_provider_name: str | None
    last_status: str
    desired_status: str
    containers: tuple[ContainerView, ...]
    cpu: str | None
    memory: str | None
    created_at: datetime
    version: int
    availability_zone: str
    attachments: tuple[dict[str, Any], ...] = ()
    container_instance_arn: str | None = None
    platform_version: str | None = None
    platform_family: str | None = None
    connectivity: str | None = None
    connectivity_at: datetime | None = None
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    stopped_at: datetime | None = None
    execution_stopped_at: datetime | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    health_status: str = "UNKNOWN"
    tags: tuple[dict[str, str], ...] = ()


# --- backends ----------------------------------------------------------------------------------------------


# --- accounts ----------------------------------------------------------------------------------------------

# moto keeps one set of backends per account. Every function here reads and writes the account the
# caller is working in: the world's default one, or another inside `in_account`.
_account: ContextVar[str] = ContextVar("ecs_sim_account", default=ACCOUNT_ID)


@contextmanager
def in_account(account_id: str) -> Iterator[None]:
    """Work in `account_id`'s backends for the duration of the block (this thread only)."""
    token = _account.set(account_id)
    try:
        yield
    finally:
        _account.reset(token)


def current_account() -> str:
    return _account.get()


def account_of_access_key(access_key: str) -> str:
    """The account an access key belongs to, as moto decides it: temporary keys from AssumeRole belong to
    the role's account, anything unknown to the default account."""
    return str(get_account_id_from(access_key))


_backends: dict[tuple[str, str, str], MotoObject] = {}


def _backend(name: str, backends: MotoObject, key: str) -> MotoObject:
    # BackendDict lookups cost more than the world's own work on a large fleet; reset() clears this.
    account = _account.get()
    found = _backends.get((account, name, key))
    if found is None:
        found = _backends[(account, name, key)] = backends[account][key]
    return found


def _ecs(region: str) -> MotoObject:
    return _backend("ecs", ecs_backends, region)


def _asg(region: str) -> MotoObject:
    return _backend("autoscaling", autoscaling_backends, region)


def _elbv2(region: str) -> MotoObject:
    return _backend("elbv2", elbv2_backends, region)


def _iam() -> MotoObject:
    return _backend("iam", iam_backends, _PARTITION)


def _ints(value: object, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        return default


# --- ECS services ----------------------------------------------------------------------------------------


def _service_config(service: MotoObject) -> ServiceConfig:
    return ServiceConfig(
        cluster=service.cluster_name,
        name=service.name,
        arn=service.arn,
        status=service.status,
        task_definition=service.task_definition or "",
        desired_count=int(service.desired_count or 0),
        grace_period=_ints(getattr(service, "health_check_grace_period_seconds", None)),
        deployment_configuration=dict(getattr(service, "deployment_configuration", None) or {}),
        load_balancers=list(service.load_balancers or []),
        launch_type=service.launch_type,
        capacity_provider_strategy=list(getattr(service, "capacity_provider_strategy", None) or []),
        network_configuration=dict(service.network_configuration or {}),
        tags=list(service.tags or []),
    )


def service_configs(region: str) -> list[ServiceConfig]:
    return [_service_config(s) for s in _ecs(region).services.values()]


def service_config(region: str, cluster: str, name: str) -> ServiceConfig | None:
    service = _ecs(region).services.get(f"{cluster}:{name}")
    return _service_config(service) if service is not None else None


_SERVICE_FIELDS = frozenset(
    {
        "task_definition",
        "desired_count",
        "running_count",
        "pending_count",
        "deployments",
        "events",
        "deployment_configuration",
        "health_check_grace_period_seconds",
        "capacity_provider_strategy",
        "created_at",
        "created_by",
        "platform_version",
        "platform_family",
        "enable_ecs_managed_tags",
        "scheduling_strategy",
        "launch_type",
    }
)


def write_service(region: str, cluster: str, name: str, **fields: object) -> None:
    """Set fields of a service as DescribeServices will show them (snake_case names)."""
    unknown = set(fields) - _SERVICE_FIELDS
    if unknown:
        raise ValueError(f"not a service field the world writes: {sorted(unknown)}")
    service = _ecs(region).services[f"{cluster}:{name}"]
    for key, value in fields.items():
        setattr(service, key, value)


def create_service_in_process(
    region: str,
    *,
    cluster: str,
    name: str,
    task_definition: str,
    desired_count: int,
    launch_type: str | None,
    load_balancers: list[dict[str, Any]],
    network_configuration: dict[str, Any] | None,
    tags: list[dict[str, str]],
) -> None:
    """CreateService without HTTP, for building large fleets quickly. The network configuration is the
    caller's (valid) one and is set as it is: moto's own check of it costs more than the rest."""
    service = _ecs(region).create_service(
        cluster,
        name,
        desired_count,
        task_definition_str=task_definition,
        load_balancers=load_balancers,
        tags=tags,
        launch_type=launch_type,
        network_configuration=None,
        propagate_tags="NONE",
    )
    service.network_configuration = network_configuration


def register_task_definition_in_process(region: str, family: str, definition: Mapping[str, Any]) -> str:
    """RegisterTaskDefinition without HTTP; returns the ARN."""
    task_definition = _ecs(region).register_task_definition(
        family,
        definition["containerDefinitions"],
        network_mode=definition.get("networkMode"),
        requires_compatibilities=definition.get("requiresCompatibilities"),
        cpu=definition.get("cpu"),
        memory=definition.get("memory"),
        execution_role_arn=definition.get("executionRoleArn"),
    )
    arn: str = task_definition.arn
    return arn


def create_cluster_in_process(region: str, name: str) -> str:
    arn: str = _ecs(region).create_cluster(name, capacity_providers=["FARGATE", "FARGATE_SPOT"]).arn
    return arn


def push_image_in_process(region: str, repository: str, tag: str, manifest: str) -> None:
    """CreateRepository (if needed) and PutImage without HTTP."""
    backend = _backend("ecr", ecr_backends, region)
    if repository not in backend.repositories:
        backend.create_repository(
            repository_name=repository,
            registry_id=None,
            encryption_config={"encryptionType": "AES256"},
            image_scan_config={"scanOnPush": False},
            image_tag_mutability="MUTABLE",
            tags=[],
        )
    backend.put_image(repository, manifest, tag)


def create_log_group_in_process(region: str, name: str) -> None:
    backend = _backend("logs", logs_backends, region)
    if name not in backend.groups:
        backend.create_log_group(name, {})


def cluster_names(region: str) -> list[str]:
    return list(_ecs(region).clusters)


def write_cluster_counts(
    region: str, cluster: str, *, running: int, pending: int, services: int, instances: int
) -> None:
    target = _ecs(region).clusters.get(cluster)
    if target is None:
        return
    target.running_tasks_count = running
    target.pending_tasks_count = pending
    target.active_services_count = services
    target.registered_container_instances_count = instances


# --- task definitions ------------------------------------------------------------------------------------


def _log_options(definition: Mapping[str, Any]) -> dict[str, str] | None:
    config = definition.get("logConfiguration")
    if not isinstance(config, dict) or config.get("logDriver") != "awslogs":
        return None
    options = config.get("options")
    return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}


def _task_definition_view(task_definition: MotoObject) -> TaskDefinitionView:
    containers = tuple(
        ContainerDefinition(
            name=str(c.get("name")),
            image=str(c.get("image")),
            essential=bool(c.get("essential", True)),
            cpu=_ints(c.get("cpu"), 0) or 0,
            memory=_ints(c.get("memory")),
            memory_reservation=_ints(c.get("memoryReservation")),
            port_mappings=list(c.get("portMappings") or []),
            log_options=_log_options(c),
        )
        for c in task_definition.container_definitions
    )
    raw = {
        "containerDefinitions": task_definition.container_definitions,
        "cpu": task_definition.cpu,
        "memory": task_definition.memory,
        "networkMode": task_definition.network_mode,
        "executionRoleArn": getattr(task_definition, "execution_role_arn", None),
        "taskRoleArn": getattr(task_definition, "task_role_arn", None),
        "requiresCompatibilities": task_definition.requires_compatibilities,
        "status": task_definition.status,
    }
    return TaskDefinitionView(
        arn=task_definition.arn,
        family=task_definition.family,
        revision=task_definition.revision,
        status=task_definition.status,
        cpu=_ints(task_definition.cpu),
        memory=_ints(task_definition.memory),
        network_mode=task_definition.network_mode or "bridge",
        execution_role_arn=getattr(task_definition, "execution_role_arn", None),
        containers=containers,
        raw=json.loads(json.dumps(raw, default=str)),
    )


def task_definition(region: str, reference: str) -> TaskDefinitionView | None:
    """`family`, `family:revision` or an ARN, as ECS resolves it; None when it does not exist."""
    name = reference.rsplit("/", 1)[-1]
    family, _, revision = name.partition(":")
    revisions = _ecs(region).task_definitions.get(family)
    if not revisions:
        return None
    number = int(revision) if revision.isdigit() else max(revisions)
    found = revisions.get(number)
    return _task_definition_view(found) if found is not None else None


def task_definitions(region: str) -> list[TaskDefinitionView]:
    return [_task_definition_view(td) for family in _ecs(region).task_definitions.values() for td in family.values()]


# --- ECS tasks -------------------------------------------------------------------------------------------


def _new_task(region: str, cluster: str, task_id: str) -> MotoObject:
    backend = _ecs(region)
    # Built without Task.__init__, which would create an ENI in moto's EC2 for every awsvpc task.
    task: MotoObject = Task.__new__(Task)
    ManagedState.__init__(task, model_name="ecs::task", transitions=_FROZEN_TRANSITIONS)
    task.id = task_id
    task.cluster_name = cluster
    task.cluster_arn = backend.clusters[cluster].arn
    task.region_name = region
    task._account_id = _account.get()
    task._backend = backend
    task.resource_requirements = None
    task.network_configuration = {}
    return task


def _container(view: ContainerView, task_arn: str, known: MotoObject | None = None) -> MotoObject:
    # The same container again: its moto object is updated, not replaced (each new model object is
    # remembered by moto until the next reset).
    container: MotoObject = known if known is not None else Container.__new__(Container)
    container.container_arn = view.container_arn
    container.task_arn = task_arn
    container.name = view.name
    container.image = view.image
    container.image_digest = view.image_digest
    container.runtime_id = view.runtime_id
    container.last_status = view.last_status
    if view.exit_code is not None:
        container.exitCode = view.exit_code  # moto's attribute is literally `exitCode`
    elif hasattr(container, "exitCode"):
        del container.exitCode
    container.reason = view.reason
    container.cpu = view.cpu
    container.memory = view.memory
    container.memory_reservation = view.memory_reservation
    container.network_bindings = list(view.network_bindings)
    container.network_interfaces = list(view.network_interfaces)
    container.health_status = view.health_status
    return container


def upsert_task(region: str, view: TaskView) -> str:
    """Create or update a task so that ListTasks and DescribeTasks show `view`; returns its ARN."""
    backend = _ecs(region)
    tasks = backend.tasks.setdefault(view.cluster, {})
    arn = f"arn:aws:ecs:{region}:{_account.get()}:task/{view.cluster}/{view.task_id}"
    task = tasks.get(arn)
    if task is None:
        task = _new_task(region, view.cluster, view.task_id)
        tasks[arn] = task
    task.task_definition_arn = view.task_definition_arn
    task.group = view.group
    task.started_by = view.started_by
    task.launch_type = view.launch_type
    task.capacity_provider_name = view.capacity_provider_name
    task.last_status = view.last_status
    task.desired_status = view.desired_status
    known = {c.container_arn: c for c in getattr(task, "containers", None) or ()}
    task.containers = [_container(c, arn, known.get(c.container_arn)) for c in view.containers]
    task.cpu = view.cpu
    task.memory = view.memory
    task.created_at = view.created_at
    task.version = view.version
    task.availability_zone = view.availability_zone
    task.attachments = list(view.attachments)
    task.container_instance_arn = view.container_instance_arn
    task.platform_version = view.platform_version
    task.platform_family = view.platform_family
    task.connectivity = view.connectivity
    task.connectivity_at = view.connectivity_at
    task.pull_started_at = view.pull_started_at
    task.pull_stopped_at = view.pull_stopped_at
    task.started_at = view.started_at
    task.stopping_at = view.stopping_at
    task.stopped_at = view.stopped_at
    task.execution_stopped_at = view.execution_stopped_at
    task.stop_code = view.stop_code
    task.stopped_reason = view.stopped_reason
    task.overrides = {
        "containerOverrides": [{"name": c.name} for c in view.containers],
        "inferenceAcceleratorOverrides": [],
    }
    task.enable_execute_command = False
    if view.launch_type == "FARGATE":
        task.ephemeral_storage = {"sizeInGiB": 20}
    task.health_status = view.health_status
    if view.tags or not hasattr(task, "tags"):
        task.tags = list(view.tags)
    return arn


def remove_task(region: str, cluster: str, task_arn: str) -> None:
    _ecs(region).tasks.get(cluster, {}).pop(task_arn, None)


def task_arns(region: str) -> set[str]:
    return {arn for tasks in _ecs(region).tasks.values() for arn in tasks}


# --- container instances ---------------------------------------------------------------------------------


def _resource(name: str, value: int) -> dict[str, Any]:
    return {"doubleValue": 0.0, "integerValue": value, "longValue": 0, "name": name, "type": "INTEGER"}


def _ports(name: str, ports: Iterable[str]) -> dict[str, Any]:
    return {
        "doubleValue": 0.0,
        "integerValue": 0,
        "longValue": 0,
        "name": name,
        "stringSetValue": list(ports),
        "type": "STRINGSET",
    }


_AGENT_PORTS = ("22", "2375", "2376", "51678", "51679")


def register_container_instance(region: str, cluster: str, ec2_instance_id: str, cpu: int, memory: int) -> str:
    """What the ECS agent does when an instance boots: register it with its CPU and memory; returns the
    container instance id."""
    backend = _ecs(region)
    instance = backend.register_container_instance(cluster, ec2_instance_id)
    # ECS container instance ids are 32 hex digits; moto's are UUIDs.
    registered = backend.container_instances[cluster]
    registered.pop(instance.id, None)
    instance.id = instance.id.replace("-", "")
    registered[instance.id] = instance
    instance.registered_resources = [
        _resource("CPU", cpu),
        _resource("MEMORY", memory),
        _ports("PORTS", _AGENT_PORTS),
        _ports("PORTS_UDP", ()),
    ]
    instance.version_info = {
        "agentVersion": "1.89.2",
        "agentHash": "5ce8d3c1",
        "dockerVersion": "DockerVersion: 25.0.8",
    }
    write_container_instance(region, cluster, instance.id, cpu_free=cpu, memory_free=memory, host_ports=(), running=0)
    container_instance_id: str = instance.id
    return container_instance_id


def write_container_instance(
    region: str,
    cluster: str,
    container_instance_id: str,
    *,
    cpu_free: int,
    memory_free: int,
    host_ports: Iterable[int],
    running: int,
    pending: int = 0,
    status: str | None = None,
) -> None:
    instance = _ecs(region).container_instances.get(cluster, {}).get(container_instance_id)
    if instance is None:
        return
    ports = list(_AGENT_PORTS) + [str(p) for p in sorted(host_ports)]
    instance.remaining_resources = [
        _resource("CPU", cpu_free),
        _resource("MEMORY", memory_free),
        _ports("PORTS", ports),
        _ports("PORTS_UDP", ()),
    ]
    instance.running_tasks_count = running
    instance.pending_tasks_count = pending
    if status is not None:
        instance.status = status


def deregister_container_instance(region: str, cluster: str, container_instance_id: str) -> None:
    _ecs(region).container_instances.get(cluster, {}).pop(container_instance_id, None)


def container_instance_arn(region: str, cluster: str, container_instance_id: str) -> str:
    return f"arn:aws:ecs:{region}:{_account.get()}:container-instance/{cluster}/{container_instance_id}"


# --- capacity --------------------------------------------------------------------------------------------


def auto_scaling_group(region: str, name: str) -> AsgView | None:
    group = _asg(region).autoscaling_groups.get(name)
    if group is None:
        return None
    return AsgView(
        name=group.name,
        arn=group.arn,
        min_size=int(group.min_size or 0),
        max_size=int(group.max_size or 0),
        desired=int(group.desired_capacity or 0),
        instance_ids=tuple(s.instance.id for s in group.instance_states if s.lifecycle_state == "InService"),
    )


def auto_scaling_groups(region: str) -> list[AsgView]:
    return [view for name in list(_asg(region).autoscaling_groups) if (view := auto_scaling_group(region, name))]


def set_desired_capacity(region: str, name: str, desired: int) -> None:
    """What capacity-provider managed scaling does to its group."""
    _asg(region).set_desired_capacity(name, desired)


def capacity_providers(region: str) -> list[CapacityProviderView]:
    views = []
    for provider in _ecs(region).capacity_providers.values():
        details = provider.auto_scaling_group_provider or {}
        views.append(
            CapacityProviderView(
                name=provider.name,
                arn=provider.capacity_provider_arn,
                asg_arn=str(details.get("autoScalingGroupArn", "")),
                managed_scaling=dict(details.get("managedScaling") or {}),
            )
        )
    return views


def cluster_capacity_providers(region: str) -> dict[str, list[str]]:
    return {name: list(c.capacity_providers or []) for name, c in _ecs(region).clusters.items()}


def instance_availability_zone(region: str, ec2_instance_id: str) -> str:
    instance = _backend("ec2", ec2_backends, region).get_instance_by_id(ec2_instance_id)
    return str(instance.placement.zone) if instance is not None else f"{region}a"


def instance_private_ip(region: str, ec2_instance_id: str) -> str:
    instance = _backend("ec2", ec2_backends, region).get_instance_by_id(ec2_instance_id)
    return str(instance.private_ip) if instance is not None else "10.0.0.10"


# --- ECR and IAM -----------------------------------------------------------------------------------------


def image_tags(region: str, repository: str) -> frozenset[str] | None:
    """The tags pushed to a repository; None when the repository does not exist."""
    repo = _backend("ecr", ecr_backends, region).repositories.get(repository)
    if repo is None:
        return None
    return frozenset(tag for image in repo.images for tag in image.image_tags)


def image_digest(region: str, repository: str, tag: str) -> str | None:
    repo = _backend("ecr", ecr_backends, region).repositories.get(repository)
    for image in repo.images if repo is not None else ():
        if tag in image.image_tags:
            digest: str = image.image_digest
            return digest
    return None


def repositories(region: str) -> dict[str, list[str]]:
    backend = _backend("ecr", ecr_backends, region)
    return {name: sorted(t for i in r.images for t in i.image_tags) for name, r in backend.repositories.items()}


def role_policy_documents(role_name: str) -> list[str | dict[str, Any]] | None:
    """The documents of a role's inline and attached policies (raw text where IAM stores text); None
    when the role does not exist. AWS-managed policies IAM does not know come back as their ARN."""
    role = next((r for r in _iam().roles.values() if r.name == role_name), None)
    if role is None:
        return None
    documents: list[str | dict[str, Any]] = list(role.policies.values())
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.version_id == policy.default_version_id), None)
        documents.append(version.document if version is not None and version.document else {"Arn": arn})
    return documents


def role_policies(role_name: str) -> list[tuple[str, str | dict[str, Any]]] | None:
    """`role_policy_documents`, each with its policy's name (inline name, or managed policy name), for
    IAM's policy simulator; None when the role does not exist."""
    role = next((r for r in _iam().roles.values() if r.name == role_name), None)
    if role is None:
        return None
    named: list[tuple[str, str | dict[str, Any]]] = list(role.policies.items())
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.version_id == policy.default_version_id), None)
        document = version.document if version is not None and version.document else {"Arn": arn}
        named.append((str(getattr(policy, "name", "") or arn.rsplit("/", 1)[-1]), document))
    return named


def roles(region: str) -> dict[str, dict[str, Any]]:
    del region  # IAM is global
    return {
        role.name: {
            "inline": {name: json.loads(doc) if isinstance(doc, str) else doc for name, doc in role.policies.items()},
            "attached": sorted(role.managed_policies),
        }
        for role in _iam().roles.values()
    }


# --- ELBv2 -----------------------------------------------------------------------------------------------


def target_group(region: str, arn: str) -> TargetGroupView | None:
    group = _elbv2(region).target_groups.get(arn)
    if group is None:
        return None
    return TargetGroupView(
        arn=group.arn,
        name=group.name,
        port=int(group.port or 80),
        target_type=str(group.target_type or "instance"),
        interval_seconds=int(group.health_check_interval_seconds or 30),
        timeout_seconds=int(group.health_check_timeout_seconds or 5),
        healthy_threshold=int(group.healthy_threshold_count or 5),
        unhealthy_threshold=int(group.unhealthy_threshold_count or 2),
        deregistration_delay=int(group.attributes.get("deregistration_delay.timeout_seconds", 300)),
        path=group.health_check_path,
    )


def target_groups(region: str) -> list[TargetGroupView]:
    return [view for arn in list(_elbv2(region).target_groups) if (view := target_group(region, arn))]


def register_target(region: str, target_group_arn: str, target_id: str, port: int) -> None:
    group = _elbv2(region).target_groups.get(target_group_arn)
    if group is not None:
        group.targets[target_id] = {"Id": target_id, "Port": port}
        group.deregistered_targets.pop(target_id, None)


def deregister_target(region: str, target_group_arn: str, target_id: str) -> None:
    group = _elbv2(region).target_groups.get(target_group_arn)
    if group is not None:
        group.targets.pop(target_id, None)


HealthProvider = Callable[[str, str], tuple[str, str | None, str | None] | None]
_original_health_for = FakeTargetGroup.health_for
_health_provider: list[HealthProvider] = []


def install_target_health(provider: HealthProvider) -> None:
    """Make DescribeTargetHealth report `provider(target_group_arn, target_id)` -> (state, reason,
    description) for the targets the world knows; moto's own answer for the rest."""
    _health_provider[:] = [provider]

    def health_for(self: MotoObject, target: dict[str, Any], ec2_backend: MotoObject) -> MotoObject:
        known = _health_provider[0](self.arn, target["Id"]) if _health_provider else None
        if known is None:
            return _original_health_for(self, target, ec2_backend)
        entry = self.targets.get(target["Id"]) or {"Port": target.get("Port", self.port)}
        state, reason, description = known
        return FakeHealthStatus(target["Id"], entry["Port"], self.health_check_port, state, reason, description)

    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]


def uninstall_target_health() -> None:
    _health_provider.clear()
    FakeTargetGroup.health_for = _original_health_for  # type: ignore[method-assign]


# --- CloudWatch Logs -------------------------------------------------------------------------------------


def secret_exists(region: str, secret_id: str) -> bool:
    """Whether Secrets Manager has the secret (by ARN or name), as GetSecretValue would find it."""
    store = _backend("secretsmanager", secretsmanager_backends, region).secrets
    try:
        return secret_id in store
    except (KeyError, ValueError):
        return False


def log_group_exists(region: str, name: str) -> bool:
    return name in _backend("logs", logs_backends, region).groups


def put_log_lines(region: str, group: str, stream: str, lines: Sequence[tuple[int, str]]) -> None:
    """Append lines (epoch milliseconds, message) to a stream, creating it; what the awslogs driver
    does. Written below the API, so that simulated timestamps are not held to the real clock."""
    log_group = _backend("logs", logs_backends, region).groups.get(group)
    if log_group is None or not lines:
        return
    if stream not in log_group.streams:
        log_group.create_log_stream(stream)
    log_group.streams[stream].put_log_events([{"timestamp": ts, "message": message} for ts, message in lines])


# --- EventBridge -----------------------------------------------------------------------------------------


def has_event_rules(region: str) -> bool:
    bus = _backend("events", events_backends, region).event_buses.get("default")
    return bool(bus is not None and bus.rules)


def deliver_event(region: str, event: Mapping[str, Any]) -> None:
    """Hand one event to the targets of every enabled rule on the default bus that matches it, as
    EventBridge does; `event` is the envelope (`id`, `detail-type`, `source`, `account`, `time` as a
    datetime, `region`, `resources`, `detail`). The event keeps its id, so a duplicate delivery looks
    like one. A standard SQS queue without an input transformer gets the envelope itself (moto's own
    templating costs more than the rest of a large world's tick); other targets go through moto."""
    bus = _backend("events", events_backends, region).event_buses.get("default")
    if bus is None:
        return
    at = event["time"]
    epoch = at.timestamp() if isinstance(at, datetime) else float(at)
    message = {"version": "0", **event, "time": epoch, "ingestion-time": epoch}
    for rule in list(bus.rules.values()):
        if rule.state != "ENABLED" or not rule.event_pattern.matches_event(message):
            continue
        if all(_plain_queue(target) for target in rule.targets):
            body = {
                "version": "0",
                "id": event["id"],
                "detail-type": event["detail-type"],
                "source": event["source"],
                "account": event["account"],
                "time": datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": event["region"],
                "resources": event["resources"],
                "detail": event["detail"],
            }
            queues = _backend("sqs", sqs_backends, region)
            for target in rule.targets:
                queues.send_message(queue_name=str(target["Arn"]).rsplit(":", 1)[-1], message_body=json.dumps(body))
        else:
            rule.send_to_targets(dict(message))


def _plain_queue(target: Mapping[str, Any]) -> bool:
    arn = str(target.get("Arn", ""))
    return (
        arn.startswith("arn:aws:sqs:")
        and not arn.endswith(".fifo")
        and "InputTransformer" not in target
        and "InputPath" not in target
        and "Input" not in target
    )


# --- STS and IAM trust -------------------------------------------------------------------------------------


def role_trust_policy(role_name: str) -> str | None:
    """The trust policy (AssumeRolePolicyDocument, as stored) of a role in the current account."""
    role = next((r for r in _iam().roles.values() if r.name == role_name), None)
    return None if role is None else str(role.assume_role_policy_document)


def caller_arn(access_key: str, region: str) -> str:
    """Who is calling with `access_key`, as GetCallerIdentity would answer (moto's own answer)."""
    account = account_of_access_key(access_key)
    _, arn, _ = sts_backends[account][_PARTITION].get_caller_identity(access_key, region)
    return str(arn)
