"""Launching a task: placement on EC2, its network identity, its containers, and the plan of how it will
go (a pull that will fail, a missing secret or log group, the app's own profile, its target group),
decided once from what clients configured through the public APIs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.sim import lifecycle, projection, wording
from agent.sim import moto_bridge as bridge
from agent.sim.health import HealthCheck
from agent.sim.iam_policy import ECR_TOKEN_ACTION, KNOWN_MANAGED_POLICIES, missing_pull_permission, parse_document
from agent.sim.placement import Placed, TaskNeeds, Unplaceable, place
from agent.sim.profiles import AppProfile, plan_container
from agent.sim.state import SimContainer, SimTask

if TYPE_CHECKING:
    import random

    from agent.sim.capacity import Capacity
    from agent.sim.index import TaskIndex
    from agent.sim.state import SimDeployment, SimService

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


class Ids:
    """The world's reproducible ids, all from one seeded generator (their order is part of a seed's story)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"


class TaskLauncher:
    """Makes the tasks of one account and Region."""

    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        ids: Ids,
        capacity: Capacity,
        profiles: dict[str, AppProfile],
        index: TaskIndex,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.rng = ids.rng
        self._ids = ids
        self.capacity = capacity
        self.profiles = profiles
        self.subnets: list[Subnet] = []
        self._index = index
        self._ip_counter = 0
        self._definitions: dict[str, bridge.TaskDefinitionView] = {}
        self._permission_cache: dict[tuple[bool, tuple[str, ...], str], str | None] = {}

    def launch(self, service: SimService, deployment: SimDeployment, now: datetime) -> SimTask | Unplaceable:
        """A new task of `deployment`, placed (on EC2) and planned; or why it cannot be placed."""
        definition = self.task_definition(deployment.task_definition_arn)
        if definition is None:
            return Unplaceable(closest=None, resource=None)
        ec2 = service.cluster in self.capacity.clusters and service.launch_type != "FARGATE"
        needs = self._needs(definition)
        instance = None
        if ec2:
            placed = place(needs, self.capacity.free(service.cluster, self._index.holding(service.cluster)))
            if isinstance(placed, Unplaceable):
                self.capacity.clusters[service.cluster].unplaced.append(needs)
                return placed
            assert isinstance(placed, Placed)  # noqa: S101 - narrowed for the type checker
            instance = self.capacity.instance(placed.container_instance_id)
        task_id = self._ids.hex(32)
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
        self._index.add(task, holds_resources=ec2)
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
            "id": self._ids.uuid(),
            "type": "ElasticNetworkInterface",
            "status": "ATTACHED",
            "details": [
                {"name": "subnetId", "value": subnet.subnet_id if subnet else "subnet-0"},
                {"name": "networkInterfaceId", "value": f"eni-{self._ids.hex(17)}"},
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
                    container_arn=f"arn:aws:ecs:{self.region}:{self.account_id}:container/{cluster}/{task_id}/{self._ids.uuid()}",
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
        return task

    def _secrets_failure(self, definition: bridge.TaskDefinitionView) -> str | None:
        """The first `secrets` entry whose Secrets Manager secret does not exist, as ECS words it."""
        for container in definition.raw.get("containerDefinitions") or []:
            for secret in container.get("secrets") or []:
                source = str(secret.get("valueFrom") or "")
                if ":secretsmanager:" in source and not bridge.secret_exists(self.region, source):
                    hex_ = self._ids.hex
                    request = f"{hex_(8)}-{hex_(4)}-4{hex_(3)}-a{hex_(3)}-{hex_(12)}"
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
        # Policies stored as text (almost all) key the cache as they are; only parsed ones are serialised.
        texts = tuple(d if isinstance(d, str) else json.dumps(d, sort_keys=True, default=str) for d in documents or ())
        key = (documents is None, texts, repository_arn)
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
