"""The runtime moto lacks: it launches, places, runs, health-checks and stops tasks, drives deployments,
and reacts to what clients change through the public APIs, one simulated tick at a time.

`Runtime.tick(now)` is one pass of ECS's control plane over every service; the world calls it from
`advance`. `before`/`after` are the middleware's hooks: they make a change take effect at once where
moto would otherwise show something ECS never does (a verbatim `web:2` task definition, runningCount
jumping to the desired count), and fill moto's gaps at the wire (ListTasks' serviceName filter and
pagination, DescribeTasks' MISSING failures, Auto Scaling's min/max validation).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.sim import eventbridge, lifecycle, projection, rollout, scheduler, wording
from agent.sim import moto_bridge as bridge
from agent.sim.capacity import Capacity
from agent.sim.faults import Protocol, validation_error
from agent.sim.health import HealthCheck
from agent.sim.iam_policy import ECR_TOKEN_ACTION, KNOWN_MANAGED_POLICIES, missing_pull_permission, parse_document
from agent.sim.middleware import ApiCall, InvokeJson, Reply
from agent.sim.placement import Placed, TaskNeeds, Unplaceable, place
from agent.sim.profiles import AppProfile, plan_container
from agent.sim.recording import is_mutating
from agent.sim.state import STOPPED, SimContainer, SimDeployment, SimService, SimTask

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.sim.eventbridge import Entry

STOPPED_TASK_RETENTION = timedelta(hours=1)
_EXPIRY_SCAN = timedelta(seconds=60)
_LIST_TASKS_PAGE = 100
_LIST_SERVICES_PAGE = 10
_ECR_HOST = ".dkr.ecr."


@dataclass(frozen=True, slots=True)
class Subnet:
    subnet_id: str
    availability_zone: str
    third_octet_base: int  # the subnet is 10.0.<base>.0/18


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        registry, _, rest = image.partition("/") if "/" in image else ("", "", image)
        repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
        return cls(registry, repository, tag or "latest")


def _json_reply(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, default=str).encode()


def _page(items: Sequence[str], params: Mapping[str, Any], default_size: int) -> tuple[list[str], str | None]:
    size = int(params.get("maxResults") or default_size)
    token = params.get("nextToken")
    offset = 0
    if isinstance(token, str) and token:
        try:
            offset = int(json.loads(base64.b64decode(token))["offset"])
        except (ValueError, KeyError, TypeError):
            offset = 0
    page = list(items[offset : offset + size])
    more = offset + size < len(items)
    next_token = base64.b64encode(json.dumps({"offset": offset + size}).encode()).decode() if more else None
    return page, next_token


class Runtime:
    """Owns every task, deployment and service event of the world, and the clock's present."""

    def __init__(self, *, region: str, account_id: str, start: datetime, seed: int) -> None:
        self.region = region
        self.account_id = account_id
        self.now = start
        self.rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self.services: dict[tuple[str, str], SimService] = {}
        self.cluster_arns: dict[str, str] = {}
        self.capacity = Capacity(region)
        self.profiles: dict[str, AppProfile] = {}
        self.subnets: list[Subnet] = []
        self._ip_counter = 0
        self._bus: list[Entry] = []
        self._configs_dirty = False
        self._definitions: dict[str, bridge.TaskDefinitionView] = {}
        self._targets: dict[tuple[str, str], SimTask] = {}
        self._holders: dict[str, dict[str, SimTask]] = {}  # EC2 tasks holding resources, by cluster
        self._last_expiry = start
        self._tasks_by_id: dict[str, SimTask] = {}
        self._permission_cache: dict[tuple[str, str], str | None] = {}
        self._bus_enabled = False

    # --- what the scheduler needs (SchedulerEnv) ---------------------------------------------------------

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def publish(self, entry: Entry) -> None:
        if self._bus_enabled:
            self._bus.append(entry)

    def set_service_task_definition(self, service: SimService, task_definition_arn: str) -> None:
        bridge.write_service(self.region, service.cluster, service.name, task_definition=task_definition_arn)

    def write_logs(self, group: str, stream: str, lines: Sequence[tuple[datetime, str]]) -> None:
        bridge.put_log_lines(self.region, group, stream, [(int(at.timestamp() * 1000), text) for at, text in lines])

    def register_target(self, target_group_arn: str, target_id: str, port: int) -> None:
        bridge.register_target(self.region, target_group_arn, target_id, port)

    def deregister_target(self, target_group_arn: str, target_id: str) -> None:
        bridge.deregister_target(self.region, target_group_arn, target_id)
        self._targets.pop((target_group_arn, target_id), None)

    def placement_failed(self, service: SimService, failure: Unplaceable, now: datetime) -> None:
        ec2 = self.capacity.clusters.get(service.cluster)
        if failure.closest is None:
            message = wording.placement_no_instances(service.name)
            reason = "RESOURCE:CPU"
        else:
            message = wording.placement_insufficient(service.name, failure.closest, failure.resource or "CPU")
            reason = f"RESOURCE:{failure.resource or 'CPU'}"
        if scheduler.add_problem(service, message, now, self):
            extra: dict[str, Any] = {"reason": reason}
            if failure.closest is not None:
                extra["containerInstanceArns"] = [
                    bridge.container_instance_arn(self.region, service.cluster, failure.closest)
                ]
            elif ec2 is not None:
                extra["capacityProviderArns"] = [self._capacity_provider_arn(ec2.capacity_provider)]
            self.publish(
                eventbridge.service_action(
                    service_arn=service.arn,
                    cluster_arn=self.cluster_arns[service.cluster],
                    event_type="ERROR",
                    event_name="SERVICE_TASK_PLACEMENT_FAILURE",
                    at=now,
                    extra=extra,
                )
            )

    def _capacity_provider_arn(self, name: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:capacity-provider/{name}"

    def create_task(self, service: SimService, deployment: SimDeployment, now: datetime) -> SimTask | Unplaceable:
        definition = self.task_definition(deployment.task_definition_arn)
        if definition is None:
            return Unplaceable(closest=None, resource=None)
        ec2 = service.cluster in self.capacity.clusters and service.launch_type != "FARGATE"
        needs = self._needs(definition)
        instance = None
        if ec2:
            holders = self._holders.get(service.cluster, {}).values()
            placed = place(needs, self.capacity.free(service.cluster, holders))
            if isinstance(placed, Unplaceable):
                self.capacity.clusters[service.cluster].unplaced.append(needs)
                return placed
            assert isinstance(placed, Placed)  # noqa: S101 - narrowed for the type checker
            instance = self.capacity.instance(placed.container_instance_id)
        task_id = self._hex(32)
        arn = f"arn:aws:ecs:{self.region}:{self.account_id}:task/{service.cluster}/{task_id}"
        awsvpc = definition.network_mode == "awsvpc"
        if awsvpc or instance is None:
            subnet = self.subnets[self._ip_counter % len(self.subnets)] if self.subnets else None
            private_ip = self._next_ip(subnet)
            zone = subnet.availability_zone if subnet else f"{self.region}a"
            attachments = [self._eni_attachment(subnet, private_ip)] if awsvpc else []
        else:
            private_ip = bridge.instance_private_ip(self.region, instance.ec2_instance_id)
            zone = bridge.instance_availability_zone(self.region, instance.ec2_instance_id)
            attachments = []
        containers = self._containers(definition, service.cluster, task_id, instance, awsvpc)
        task = self._plan(
            SimTask(
                task_id=task_id,
                arn=arn,
                cluster=service.cluster,
                service=service.name,
                deployment_id=deployment.id,
                task_definition_arn=definition.arn,
                launch_type="FARGATE" if not ec2 else "EC2",
                capacity_provider=service.capacity_provider,
                cpu=str(definition.cpu) if definition.cpu is not None else None,
                memory=str(definition.memory) if definition.memory is not None else None,
                containers=containers,
                created_at=now,
                availability_zone=zone,
                private_ip=private_ip,
                attachments=attachments,
                pending_at=now,
                pull_started_at_planned=now,
                start_failure=None,
                start_failure_at=None,
                running_at=None,
                plan=None,
                container_instance_id=instance.container_instance_id if instance else None,
                ec2_instance_id=instance.ec2_instance_id if instance else None,
                needs=needs if ec2 else None,
                grace_period_seconds=service.grace_period,
            ),
            definition,
            service,
            now,
        )
        self._tasks_by_id[task_id] = task
        if ec2:
            self._holders.setdefault(service.cluster, {})[task_id] = task
        return task

    def _needs(self, definition: bridge.TaskDefinitionView) -> TaskNeeds:
        cpu = definition.cpu if definition.cpu is not None else sum(c.cpu for c in definition.containers)
        memory = (
            definition.memory
            if definition.memory is not None
            else sum(c.memory or c.memory_reservation or 0 for c in definition.containers)
        )
        ports: set[int] = set()
        if definition.network_mode in ("bridge", "host"):
            for container in definition.containers:
                for mapping in container.port_mappings:
                    host_port = int(mapping.get("hostPort") or 0)
                    if host_port:
                        ports.add(host_port)
        return TaskNeeds(cpu=cpu, memory=memory, ports=frozenset(ports))

    def _next_ip(self, subnet: Subnet | None) -> str:
        self._ip_counter += 1
        base = subnet.third_octet_base if subnet else 0
        n = self._ip_counter // max(len(self.subnets), 1)
        return f"10.0.{base + (n // 250) % 64}.{n % 250 + 4}"

    def _eni_attachment(self, subnet: Subnet | None, private_ip: str) -> dict[str, Any]:
        mac = ":".join(f"{self.rng.getrandbits(8):02x}" for _ in range(6))
        return {
            "id": self.event_id(),
            "type": "ElasticNetworkInterface",
            "status": "ATTACHED",
            "details": [
                {"name": "subnetId", "value": subnet.subnet_id if subnet else "subnet-0"},
                {"name": "networkInterfaceId", "value": f"eni-{self._hex(17)}"},
                {"name": "macAddress", "value": mac},
                {"name": "privateDnsName", "value": f"ip-{private_ip.replace('.', '-')}.ec2.internal"},
                {"name": "privateIPv4Address", "value": private_ip},
            ],
        }

    def _containers(
        self,
        definition: bridge.TaskDefinitionView,
        cluster: str,
        task_id: str,
        instance: Any,  # noqa: ANN401 - a SimInstance or None
        awsvpc: bool,
    ) -> list[SimContainer]:
        containers = []
        for index, c in enumerate(definition.containers):
            container_port = next((int(m["containerPort"]) for m in c.port_mappings if "containerPort" in m), None)
            host_port = None
            if not awsvpc and instance is not None and container_port is not None:
                static = next((int(m.get("hostPort") or 0) for m in c.port_mappings), 0)
                if static:
                    host_port = static
                else:
                    host_port = instance.next_host_port
                    instance.next_host_port += 1
            ref = ImageRef.parse(c.image)
            digest = bridge.image_digest(self.region, ref.repository, ref.tag) if _ECR_HOST in ref.registry else None
            containers.append(
                SimContainer(
                    name=c.name,
                    image=c.image,
                    container_arn=f"arn:aws:ecs:{self.region}:{self.account_id}:container/{cluster}/{task_id}/{self.event_id()}",
                    runtime_id=f"{task_id}-{self.rng.randrange(10**9, 10**10) + index}",
                    image_digest=digest,
                    essential=c.essential,
                    cpu=c.cpu,
                    memory=c.memory,
                    memory_reservation=c.memory_reservation,
                    container_port=container_port,
                    host_port=host_port,
                )
            )
        return containers

    def _plan(
        self, task: SimTask, definition: bridge.TaskDefinitionView, service: SimService, now: datetime
    ) -> SimTask:
        """Decide, from the image, the execution role, the logs and the app's profile, how it will go."""
        fargate = task.launch_type == "FARGATE"
        task.pending_at = now + timedelta(seconds=10 if fargate else 1)
        task.pull_started_at_planned = task.pending_at + timedelta(seconds=2 if fargate else 1)
        essential = next((c for c in definition.containers if c.essential), definition.containers[0])
        failure = None
        for container in definition.containers:
            failure = self._pull_failure(definition, container.image, task.task_id)
            if failure:
                break
        failure = failure or self._secrets_failure(definition)
        if failure:
            task.start_failure = failure
            task.start_failure_at = task.pull_started_at_planned + timedelta(seconds=30)
        elif essential.log_options is not None and not bridge.log_group_exists(
            self.region, essential.log_options.get("awslogs-group", "")
        ):
            task.start_failure = wording.LOG_GROUP_MISSING
            task.start_failure_at = task.pull_started_at_planned + timedelta(seconds=7)
        else:
            task.running_at = task.pull_started_at_planned + timedelta(seconds=8 if fargate else 5)
        if essential.log_options is not None:
            task.log_group = essential.log_options.get("awslogs-group")
            task.log_stream_prefix = essential.log_options.get("awslogs-stream-prefix")
        profile = self.profiles.get(essential.image, AppProfile())
        limit = projection.memory_limit(definition, essential.name, fargate=fargate)
        task.plan = plan_container(profile, limit)
        balancer = service.load_balancer
        if balancer and balancer.get("targetGroupArn"):
            group = bridge.target_group(self.region, str(balancer["targetGroupArn"]))
            if group is not None:
                port = int(balancer.get("containerPort") or profile.port)
                target_id = task.private_ip if definition.network_mode == "awsvpc" else str(task.ec2_instance_id)
                task.target = lifecycle.new_target(group.arn, target_id, port, now)
                task.health_check = HealthCheck(
                    path=group.path or "/",
                    interval_seconds=group.interval_seconds,
                    timeout_seconds=group.timeout_seconds,
                    healthy_threshold=group.healthy_threshold,
                    unhealthy_threshold=group.unhealthy_threshold,
                )
                task.drain_seconds = group.deregistration_delay
                self._targets[(group.arn, target_id)] = task
        return task

    def _secrets_failure(self, definition: bridge.TaskDefinitionView) -> str | None:
        """The first `secrets` entry whose Secrets Manager secret does not exist, as ECS words it."""
        for container in definition.raw.get("containerDefinitions") or []:
            for secret in container.get("secrets") or []:
                source = str(secret.get("valueFrom") or "")
                if ":secretsmanager:" in source and not bridge.secret_exists(self.region, source):
                    request = f"{self._hex(8)}-{self._hex(4)}-4{self._hex(3)}-a{self._hex(3)}-{self._hex(12)}"
                    return wording.secret_not_found(source, request)
        return None

    def _pull_failure(self, definition: bridge.TaskDefinitionView, image: str, task_id: str) -> str | None:
        ref = ImageRef.parse(image)
        if _ECR_HOST not in ref.registry:
            return None  # a public image: the world assumes the registry answers
        role_arn = definition.execution_role_arn
        if not role_arn:
            return wording.no_registry_credentials(ref.registry, ref.repository, ref.tag)
        role = role_arn.rsplit("/", 1)[-1]
        documents = bridge.role_policy_documents(role)
        repository_arn = f"arn:aws:ecr:{self.region}:{self.account_id}:repository/{ref.repository}"
        key = (json.dumps(documents, sort_keys=True, default=str), repository_arn)
        missing = self._permission_cache.get(key, "?")
        if missing == "?":
            parsed = []
            for document in documents or []:
                if isinstance(document, dict) and "Arn" in document:
                    parsed.append(KNOWN_MANAGED_POLICIES.get(str(document["Arn"]), {}))
                else:
                    parsed.append(parse_document(document))
            missing = missing_pull_permission(parsed, repository_arn)
            self._permission_cache[key] = missing
        if missing == ECR_TOKEN_ACTION:
            return wording.registry_auth_denied(self.account_id, role, task_id)
        if missing:
            return wording.image_pull_denied(ref.repository, self.account_id, role, task_id, repository_arn)
        tags = bridge.image_tags(self.region, ref.repository)
        if tags is None or ref.tag not in tags:
            return wording.image_not_found(image)
        return None

    def task_definition(self, reference: str) -> bridge.TaskDefinitionView | None:
        cached = self._definitions.get(reference)
        if cached is None:
            cached = bridge.task_definition(self.region, reference)
            if cached is not None and reference.startswith("arn:"):
                self._definitions[reference] = cached
        return cached

    # --- services ----------------------------------------------------------------------------------------

    def adopt(self, config: bridge.ServiceConfig, params: Mapping[str, Any], now: datetime) -> SimService:
        """Take charge of a service just created (by CreateService or a builder)."""
        definition = self.task_definition(config.task_definition)
        task_definition_arn = definition.arn if definition else config.task_definition
        ec2 = self.capacity.clusters.get(config.cluster)
        strategy = list(params.get("capacityProviderStrategy") or [])
        if not strategy and ec2 is not None and not params.get("launchType"):
            strategy = [{"capacityProvider": ec2.capacity_provider, "weight": 1, "base": 0}]
        capacity_provider = str(strategy[0]["capacityProvider"]) if strategy else None
        launch_type = None if capacity_provider else (config.launch_type or "EC2")
        configuration = rollout.merged_configuration(None, params.get("deploymentConfiguration"))
        balancers = config.load_balancers
        grace = params.get("healthCheckGracePeriodSeconds")
        grace_seconds = int(grace) if grace is not None else 0
        self.cluster_arns.setdefault(
            config.cluster, f"arn:aws:ecs:{self.region}:{self.account_id}:cluster/{config.cluster}"
        )
        service = SimService(
            cluster=config.cluster,
            name=config.name,
            arn=config.arn,
            launch_type=launch_type,
            capacity_provider=capacity_provider,
            task_definition_arn=task_definition_arn,
            desired_count=config.desired_count,
            grace_period=grace_seconds,
            deployment_configuration=configuration,
            load_balancer=balancers[0] if balancers else None,
            network_configuration=config.network_configuration,
            created_at=now,
        )
        self.services[(config.cluster, config.name)] = service
        fields: dict[str, Any] = {
            "task_definition": task_definition_arn,
            "deployment_configuration": configuration,
            "created_at": now,
            "created_by": f"arn:aws:iam::{self.account_id}:role/ecs-deployer",
            "scheduling_strategy": "REPLICA",
            "enable_ecs_managed_tags": bool(params.get("enableECSManagedTags", False)),
            "launch_type": launch_type,
        }
        if balancers or grace is not None:
            fields["health_check_grace_period_seconds"] = grace_seconds
        if strategy:
            fields["capacity_provider_strategy"] = strategy
        if launch_type == "FARGATE":
            fields["platform_version"] = "LATEST"
            fields["platform_family"] = "Linux"
        bridge.write_service(self.region, config.cluster, config.name, **fields)
        scheduler.start_deployment(service, task_definition_arn, now, self)
        self._project_service(service)
        return service

    def _sync_service(self, service: SimService, config: bridge.ServiceConfig, now: datetime, *, force: bool) -> None:
        """Apply what a client changed through UpdateService (or anything else) since the last pass."""
        if config.status != "ACTIVE" and not service.deleted:
            service.deleted = True
            service.desired_count = 0
            service.dirty = True
            bridge.write_service(self.region, service.cluster, service.name, desired_count=0)
        definition = self.task_definition(config.task_definition)
        if definition is not None and config.task_definition != definition.arn:
            bridge.write_service(self.region, service.cluster, service.name, task_definition=definition.arn)
        arn = definition.arn if definition is not None else service.task_definition_arn
        if not service.deleted and config.desired_count != service.desired_count:
            service.desired_count = config.desired_count
            if service.deployments:
                service.primary.desired_count = config.desired_count
                service.primary.updated_at = now
            service.dirty = True
        if config.grace_period is not None and config.grace_period != service.grace_period:
            service.grace_period = config.grace_period
            for task in service.tasks.values():
                lifecycle.reconsider_health(task, config.grace_period)
            service.dirty = True
        merged = rollout.merged_configuration(service.deployment_configuration, config.deployment_configuration)
        if merged != config.deployment_configuration:
            bridge.write_service(self.region, service.cluster, service.name, deployment_configuration=merged)
        if merged != service.deployment_configuration:
            service.deployment_configuration = merged
            service.dirty = True
        if force or arn != service.task_definition_arn:
            scheduler.start_deployment(service, arn, now, self)
        if service.dirty:
            service.wake_at = now

    def sync_configs(self, now: datetime) -> None:
        for config in bridge.service_configs(self.region):
            service = self.services.get((config.cluster, config.name))
            if service is not None:
                self._sync_service(service, config, now, force=False)
        self._configs_dirty = False

    # --- the pass ----------------------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        self.now = now
        # Events are built only when a rule could deliver them.
        self._bus_enabled = bridge.has_event_rules(self.region)
        if self._configs_dirty:
            self.sync_configs(now)
        for ec2_instance_id in self.capacity.sync(now):
            self._host_gone(ec2_instance_id, now)
        for cluster in self.capacity.clusters.values():
            cluster.unplaced = []
        for service in self.services.values():
            if service.steady and not service.dirty and (service.wake_at is None or service.wake_at > now):
                continue
            scheduler.reconcile(service, now, self)
            service.wake_at = _next_wake(service)
        if self.capacity.clusters:
            by_cluster = {name: list(holders.values()) for name, holders in self._holders.items()}
            self.capacity.managed_scaling(now, by_cluster)
        if now - self._last_expiry >= _EXPIRY_SCAN:
            self._expire(now)
            self._last_expiry = now
        self.project()
        self._flush_bus()

    def _host_gone(self, ec2_instance_id: str, now: datetime) -> None:
        for service in self.services.values():
            for task in service.tasks.values():
                if task.ec2_instance_id == ec2_instance_id and task.last_status != STOPPED:
                    lifecycle.begin_stop(
                        task, now, stop_code="TerminationNotice", reason=wording.host_terminated(ec2_instance_id)
                    )
                    task.kill_at = now
                    service.dirty = True

    def _expire(self, now: datetime) -> None:
        for service in self.services.values():
            expired = [
                t
                for t in service.tasks.values()
                if t.last_status == STOPPED and t.stopped_at and now - t.stopped_at >= STOPPED_TASK_RETENTION
            ]
            for task in expired:
                del service.tasks[task.task_id]
                self._tasks_by_id.pop(task.task_id, None)
                bridge.remove_task(self.region, task.cluster, task.arn)

    def project(self) -> None:
        touched_clusters: set[str] = set()
        for service in self.services.values():
            touched = service.dirty
            for task in service.tasks.values():
                if task.dirty:
                    self._project_task(task)
                    touched = True
            if touched:
                self._project_service(service)
                touched_clusters.add(service.cluster)
        for cluster in touched_clusters:
            self._project_cluster(cluster)

    def _project_task(self, task: SimTask) -> None:
        instance_arn = (
            bridge.container_instance_arn(self.region, task.cluster, task.container_instance_id)
            if task.container_instance_id
            else None
        )
        view = projection.task_view(task, container_instance_arn=instance_arn)
        bridge.upsert_task(self.region, view)
        status = f"{task.last_status}/{task.desired_status}"
        if status != task.published_status:
            task.published_status = status
            if self._bus_enabled:
                self.publish(
                    eventbridge.task_state_change(
                        view, task_arn=task.arn, cluster_arn=self.cluster_arns[task.cluster], at=self.now
                    )
                )
        if task.last_status == STOPPED:
            self._holders.get(task.cluster, {}).pop(task.task_id, None)
        task.dirty = False

    def _project_service(self, service: SimService) -> None:
        deployments = projection.deployment_dicts(service)
        bridge.write_service(
            self.region,
            service.cluster,
            service.name,
            running_count=sum(d["runningCount"] for d in deployments),
            pending_count=sum(d["pendingCount"] for d in deployments),
            deployments=deployments,
            events=list(service.events),
        )
        service.dirty = False

    def _project_cluster(self, cluster: str) -> None:
        services = [s for s in self.services.values() if s.cluster == cluster and not s.deleted]
        tasks = [t for s in services for t in s.tasks.values()]
        bridge.write_cluster_counts(
            self.region,
            cluster,
            running=sum(1 for t in tasks if t.last_status == "RUNNING"),
            pending=sum(1 for t in tasks if t.pending),
            services=len(services),
            instances=len(self.capacity.registered(cluster)),
        )
        if cluster in self.capacity.clusters:
            self.capacity.project(cluster, self._holders.get(cluster, {}).values())

    def _flush_bus(self) -> None:
        if self._bus and bridge.has_event_rules(self.region):
            bridge.put_events(self.region, self._bus)
        self._bus = []

    def target_health(self, target_group_arn: str, target_id: str) -> tuple[str, str | None, str | None] | None:
        task = self._targets.get((target_group_arn, target_id))
        if task is None or task.target is None:
            return None
        return {
            "initial": wording.TARGET_INITIAL,
            "healthy": wording.TARGET_HEALTHY,
            "unhealthy": wording.TARGET_UNHEALTHY,
            "draining": wording.TARGET_DRAINING,
        }[task.target.state]

    # --- the middleware's hooks ----------------------------------------------------------------------------

    def before(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        if call.service == "autoscaling" and call.operation in ("UpdateAutoScalingGroup", "SetDesiredCapacity"):
            return self._validate_group_sizes(call)
        if call.service == "ecs" and call.operation == "StopTask":
            return self._stop_task(call, invoke)
        return None

    def after(self, call: ApiCall, reply: Reply, invoke: InvokeJson) -> bytes | None:
        if is_mutating(call.operation):
            self._configs_dirty = True
        if call.service != "ecs":
            return None
        operation, params = call.operation, call.params
        if operation == "CreateService":
            created = reply.json().get("service", {})
            config = bridge.service_config(
                self.region, _name(created.get("clusterArn")), str(created.get("serviceName"))
            )
            if config is not None:
                self.adopt(config, params, self.now)
                return self._rendered_service(invoke, config.cluster, config.name, with_tags=True)
        elif operation == "UpdateService":
            updated = reply.json().get("service", {})
            cluster, name = _name(updated.get("clusterArn")), str(updated.get("serviceName"))
            service = self.services.get((cluster, name))
            config = bridge.service_config(self.region, cluster, name)
            if service is not None and config is not None:
                self._sync_service(service, config, self.now, force=bool(params.get("forceNewDeployment")))
                self._project_service(service)
                return self._rendered_service(invoke, cluster, name, with_tags=False)
        elif operation == "ListTasks":
            return self._list_tasks(reply, params)
        elif operation == "ListServices":
            arns, token = _page(reply.json().get("serviceArns", []), params, _LIST_SERVICES_PAGE)
            return _json_reply({"serviceArns": arns, **({"nextToken": token} if token else {})})
        elif operation == "DescribeTasks":
            return self._describe_tasks(reply, params)
        return None

    def _rendered_service(self, invoke: InvokeJson, cluster: str, name: str, *, with_tags: bool) -> bytes | None:
        """The service as the world now runs it, for the response to the call that changed it."""
        params: dict[str, Any] = {"cluster": cluster, "services": [name]}
        if with_tags:
            params["include"] = ["TAGS"]
        services = invoke("DescribeServices", params).json().get("services") or []
        return _json_reply({"service": services[0]}) if services else None

    def _list_tasks(self, reply: Reply, params: Mapping[str, Any]) -> bytes:
        arns: list[str] = reply.json().get("taskArns", [])
        service_name = params.get("serviceName")
        if service_name:
            wanted = str(service_name).rsplit("/", 1)[-1]
            arns = [
                a
                for a in arns
                if (t := self._tasks_by_id.get(a.rsplit("/", 1)[-1])) is not None and t.service == wanted
            ]
        if not params.get("desiredStatus"):
            arns = [a for a in arns if (t := self._tasks_by_id.get(a.rsplit("/", 1)[-1])) is None or t.active]
        page, token = _page(arns, params, _LIST_TASKS_PAGE)
        return _json_reply({"taskArns": page, **({"nextToken": token} if token else {})})

    def _describe_tasks(self, reply: Reply, params: Mapping[str, Any]) -> bytes | None:
        body = reply.json()
        found = {str(t.get("taskArn", "")).rsplit("/", 1)[-1] for t in body.get("tasks", [])}
        missing = [str(r) for r in params.get("tasks", []) if str(r).rsplit("/", 1)[-1] not in found]
        if not missing:
            return None
        cluster = _name(str(params.get("cluster") or "default"))
        failures = [
            {
                "arn": r if r.startswith("arn:") else f"arn:aws:ecs:{self.region}:{self.account_id}:task/{cluster}/{r}",
                "reason": "MISSING",
            }
            for r in missing
        ]
        body["failures"] = list(body.get("failures", [])) + failures
        return _json_reply(body)

    def _stop_task(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        reference = str(call.params.get("task", ""))
        task = self._tasks_by_id.get(reference.rsplit("/", 1)[-1])
        if task is None:
            if any(reference.endswith(arn.rsplit("/", 1)[-1]) for arn in bridge.task_arns(self.region)):
                return None  # a task the world does not run (RunTask): moto answers
            error = validation_error(Protocol.JSON, "InvalidParameterException", "The referenced task was not found.")
            return Reply(error.status, list(error.headers), error.body)
        reason = str(call.params.get("reason") or wording.USER_STOPPED)
        lifecycle.begin_stop(task, self.now, stop_code="UserInitiated", reason=reason, drain_seconds=task.drain_seconds)
        service = self.services.get((task.cluster, task.service))
        if service is not None:
            service.dirty = True
            service.wake_at = self.now
        self._project_task(task)
        described = invoke("DescribeTasks", {"cluster": task.cluster, "tasks": [task.arn]})
        tasks = described.json().get("tasks") or []
        return Reply(
            200, [("Content-Type", "application/x-amz-json-1.1")], _json_reply({"task": tasks[0] if tasks else {}})
        )

    def _validate_group_sizes(self, call: ApiCall) -> Reply | None:
        name = str(call.params.get("AutoScalingGroupName", ""))
        group = bridge.auto_scaling_group(self.region, name)
        if group is None or "DesiredCapacity" not in call.params:
            return None
        desired = int(call.params["DesiredCapacity"])
        minimum = int(call.params.get("MinSize", group.min_size))
        maximum = int(call.params.get("MaxSize", group.max_size))
        if minimum <= desired <= maximum:
            return None
        if call.operation == "SetDesiredCapacity":
            message = (
                wording.asg_set_desired_above_max(desired, maximum)
                if desired > maximum
                else wording.asg_set_desired_below_min(desired, minimum)
            )
        else:
            message = wording.asg_desired_out_of_bounds(desired, minimum, maximum)
        error = validation_error(Protocol.QUERY, "ValidationError", message)
        return Reply(error.status, list(error.headers), error.body)


def _name(arn_or_name: object) -> str:
    return str(arn_or_name or "").rsplit("/", 1)[-1]


def _next_wake(service: SimService) -> datetime | None:
    """The earliest moment anything of this service is due; None when only a change can wake it."""
    times: list[datetime] = []
    for task in service.tasks.values():
        if task.last_status == STOPPED:
            continue
        if task.last_status in ("PROVISIONING", "PENDING"):
            times.extend(t for t in (task.pending_at, task.start_failure_at, task.running_at) if t is not None)
        times.extend(
            t
            for t in (
                task.healthy_at,
                task.unhealthy_at,
                task.health_stop_at,
                task.exit_at,
                task.drain_until,
                task.kill_at,
                task.final_at,
            )
            if t is not None
        )
    if service.next_launch_at is not None:
        times.append(service.next_launch_at)
    return min(times) if times else None
