"""`World`: a simulated AWS account whose ECS behaves, and fails, like the real one.

moto serves ECS, ECR, EC2, Auto Scaling, ELBv2, CloudWatch, CloudWatch Logs, IAM, SQS, EventBridge
and DynamoDB on one local port; the world adds the runtime moto lacks and a simulated clock. Clients
(the agent, the `aws` CLI, tests) use only public AWS APIs through `endpoint_url`; nothing they can
see says it is a simulation.

    with World.start(seed=7) as world:
        world.add_fargate_cluster("prod")
        world.push_image("web", "v1")
        world.add_service("prod", "web", image="web:v1")
        world.advance(300)                      # five simulated minutes, in 5-second ticks
        world.client("ecs").describe_services(cluster="prod", services=["web"])

Only one world runs per process at a time: moto's backends are process-wide.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import boto3
from botocore.config import Config
from werkzeug.serving import BaseWSGIServer, make_server

from agent.sim import fingerprint as fingerprints
from agent.sim import moto_bridge as bridge
from agent.sim.capacity import BOOT_DELAY, Ec2Cluster
from agent.sim.faults import FaultInjector
from agent.sim.health import HealthCheck
from agent.sim.insights import ContainerInsights
from agent.sim.middleware import INTERNAL_HEADER, WorldMiddleware
from agent.sim.profiles import AppProfile
from agent.sim.provision import Ec2Capacity, Network, Provisioner
from agent.sim.recording import RequestLog
from agent.sim.runtime import Runtime, Subnet

REGION = "us-east-1"
FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # noqa: S105 - moto's conventional fake credential
DEFAULT_EXECUTION_ROLE = "ecsTaskExecutionRole"
DEFAULT_TICK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ServiceState:
    """A service as DescribeServices shows it, in a few numbers."""

    running: int
    desired: int
    pending: int
    rollout_state: str | None  # of the PRIMARY deployment
    deployments: int
    task_definition: str

    @property
    def steady(self) -> bool:
        """Every desired task running, one deployment, and that deployment COMPLETED."""
        return (
            self.running == self.desired
            and self.pending == 0
            and self.deployments == 1
            and self.rollout_state == "COMPLETED"
        )


_sessions: list[boto3.session.Session] = []
_session_lock = threading.Lock()


def _session() -> boto3.session.Session:
    """One boto3 session per process: it caches the service models every new client would reload."""
    with _session_lock:
        if not _sessions:
            _sessions.append(
                boto3.session.Session(
                    aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET_KEY, region_name=REGION
                )
            )
        return _sessions[0]


class World:
    """The simulated account: an HTTP endpoint, a clock, builders, and read helpers."""

    _running: ClassVar[World | None] = None
    region: str = REGION
    account_id: str = bridge.ACCOUNT_ID

    def __init__(self, *, seed: int, start_time: datetime, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.faults = FaultInjector(seed)
        self.requests = RequestLog()
        self.events_queue_url: str | None = None
        self.approver_role = "ecs-medic-approver"
        self.approval_key_id = ""
        self._lock = threading.RLock()
        self._runtime = Runtime(region=REGION, account_id=self.account_id, start=start_time, seed=seed)
        self._insights = ContainerInsights(REGION)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._session = _session()
        self._internal: dict[str, Any] = {}
        self._provisioner = Provisioner(self._internal_client, REGION, self.account_id)
        self._network: Network | None = None
        self.endpoint_url = ""

    # --- lifecycle -------------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        seed: int = 0,
        start_time: datetime | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> World:
        """Reset the emulated account, serve it on `host:port` (0: any free port) and build the network.

        `start_time` is the simulated clock's start (default: now, to the second); `seed` makes every id
        and every fault decision reproducible.
        """
        if cls._running is not None:
            raise RuntimeError("a World is already running in this process; stop it first")
        begin = start_time or datetime.now(UTC).replace(microsecond=0)
        world = cls(seed=seed, start_time=begin, tick_seconds=tick_seconds)
        bridge.reset(seed)
        bridge.install_target_health(world._runtime.target_health)
        app = WorldMiddleware(
            bridge.wsgi_app(),
            lock=world._lock,
            faults=world.faults,
            log=world.requests,
            clock=lambda: world._runtime.now,
            hooks=world._runtime,
        )
        world._server = make_server(host, port, app, threaded=True, request_handler=bridge.QuietRequestHandler)
        world.endpoint_url = f"http://{host}:{world._server.server_address[1]}"
        world._thread = threading.Thread(
            target=world._server.serve_forever, kwargs={"poll_interval": 0.05}, name="ecs-sim-server", daemon=True
        )
        world._thread.start()
        cls._running = world
        try:
            world._build_network()
        except BaseException:
            world.stop()
            raise
        return world

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        bridge.uninstall_target_health()
        if World._running is self:
            World._running = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _build_network(self) -> None:
        self._network = self._provisioner.network()
        self._runtime.subnets = [
            Subnet(subnet_id, zone, base)
            for (subnet_id, zone), base in zip(self._network.subnets, (0, 64), strict=True)
        ]
        self.add_execution_role(DEFAULT_EXECUTION_ROLE)
        self.approval_key_id = self.add_approval_key()

    # --- clients ---------------------------------------------------------------------------------------------

    def client(self, service_name: str, *, config: Config | None = None) -> Any:  # noqa: ANN401 - boto3 clients are untyped
        """A boto3 client for this world's endpoint, with fake credentials. Its requests are recorded."""
        with _session_lock:
            return self._session.client(service_name, endpoint_url=self.endpoint_url, config=config)

    def _internal_client(self, service_name: str) -> Any:  # noqa: ANN401
        client = self._internal.get(service_name)
        if client is None:
            with _session_lock:
                client = self._session.client(
                    service_name, endpoint_url=self.endpoint_url, config=Config(retries={"total_max_attempts": 1})
                )

            def mark(request: Any, **_: Any) -> None:  # noqa: ANN401 - botocore's hook signature
                request.headers[INTERNAL_HEADER] = "1"

            client.meta.events.register("before-sign.*.*", mark)
            self._internal[service_name] = client
        return client

    @property
    def environment(self) -> dict[str, str]:
        """The environment variables that point an AWS SDK or the CLI at this world."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        }

    # --- time ------------------------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The simulated time; every timestamp the world writes comes from it."""
        return self._runtime.now

    def advance(self, seconds: float) -> None:
        """Run the runtime for `seconds` of simulated time, in ticks of `tick_seconds`. Never sleeps."""
        remaining = seconds
        while remaining > 1e-9:
            step = min(self.tick_seconds, remaining)
            with self._lock:
                self._runtime.tick(self._runtime.now + timedelta(seconds=step))
                self._insights.collect(self._runtime.now, self._runtime.services.values(), self._runtime.profiles)
            remaining -= step

    def advance_until(self, condition: Callable[[], bool], *, within: float, step: float | None = None) -> float:
        """Advance until `condition()` holds (checked after each step, outside the world's lock, so it
        may call the API); returns the simulated seconds it took. Raises TimeoutError after `within`."""
        step = step or self.tick_seconds * 2
        elapsed = 0.0
        while not condition():
            if elapsed >= within:
                raise TimeoutError(f"condition not met within {within:.0f} simulated seconds")
            self.advance(step)
            elapsed += step
        return elapsed

    # --- builders --------------------------------------------------------------------------------------------

    @property
    def network(self) -> Network:
        assert self._network is not None  # noqa: S101 - built by start()
        return self._network

    def add_execution_role(self, name: str, *, ecr_pull: bool = True) -> str:
        """An IAM role ECS tasks can assume, with (or without) an inline policy allowing ECR pulls."""
        return self._provisioner.execution_role(name, ecr_pull=ecr_pull)

    def revoke_ecr_pull(self, role: str) -> None:
        """Delete the role's ECR pull policy through IAM, as a careless change would."""
        self._provisioner.revoke_ecr_pull(role)

    def grant_ecr_pull(self, role: str) -> None:
        self._provisioner.grant_ecr_pull(role)

    def add_fargate_cluster(self, name: str) -> str:
        arn = self._provisioner.fargate_cluster(name)
        with self._lock:
            self._runtime.cluster_arns[name] = arn
        return arn

    def add_ec2_cluster(
        self,
        name: str,
        *,
        instances: int = 2,
        instance_cpu: int = 2048,
        instance_memory: int = 4096,
        min_size: int | None = None,
        max_size: int | None = None,
        managed_scaling: bool = False,
        target_capacity: int = 100,
    ) -> Ec2Capacity:
        """A cluster whose capacity provider is backed by an Auto Scaling group of `instances` container
        instances, each registering `instance_cpu` CPU units and `instance_memory` MiB with ECS. The
        group's max size defaults to `instances` (no headroom)."""
        capacity = self._provisioner.ec2_cluster(
            name,
            self.network,
            instances=instances,
            instance_cpu=instance_cpu,
            instance_memory=instance_memory,
            min_size=min_size if min_size is not None else min(1, instances),
            max_size=max_size if max_size is not None else instances,
            managed_scaling=managed_scaling,
            target_capacity=target_capacity,
        )
        with self._lock:
            runtime = self._runtime
            runtime.cluster_arns[name] = f"arn:aws:ecs:{REGION}:{self.account_id}:cluster/{name}"
            runtime.capacity.add_cluster(
                Ec2Cluster(name, capacity.asg_name, capacity.capacity_provider, instance_cpu, instance_memory)
            )
            # The group's first instances are already booted when the world starts.
            runtime.capacity.sync(runtime.now - BOOT_DELAY)
            runtime.capacity.sync(runtime.now)
            runtime.project()
        return capacity

    def push_image(self, repository: str, tag: str, profile: AppProfile | None = None) -> str:
        """Push `repository:tag` to ECR and say how the app inside behaves; returns the image URI."""
        uri = self._provisioner.image(repository, tag)
        with self._lock:
            self._runtime.profiles[uri] = profile or AppProfile()
        return uri

    def delete_image(self, repository: str, tag: str) -> None:
        self._provisioner.delete_image(repository, tag)

    def image_uri(self, image: str) -> str:
        """`repo:tag` -> this account's ECR URI; a full reference is returned as it is."""
        if "/" in image or "." in image.split(":", 1)[0]:
            return image
        return f"{self.account_id}.dkr.ecr.{REGION}.amazonaws.com/{image}"

    def add_service(
        self,
        cluster: str,
        name: str,
        *,
        image: str,
        desired_count: int = 2,
        cpu: int = 256,
        memory: int = 512,
        container_memory: int | None = None,
        load_balanced: bool = True,
        grace_period: int | None = None,
        circuit_breaker: tuple[bool, bool] = (False, False),
        health_check: HealthCheck | None = None,
        execution_role: str | None = DEFAULT_EXECUTION_ROLE,
        host_port: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Register `name:1` and create the service with it, as a first deploy does.

        `image` is `repo:tag` in this account's ECR (or any full reference). Fargate unless the cluster
        was built with `add_ec2_cluster`; load-balanced services get a target group with `health_check`
        settings and use awsvpc networking. Returns the service ARN.
        """
        with self._lock:
            ec2 = cluster in self._runtime.capacity.clusters
        awsvpc = not ec2 or load_balanced
        log_group = f"/ecs/{name}"
        self._provisioner.log_group(log_group)
        role_arn = f"arn:aws:iam::{self.account_id}:role/{execution_role}" if execution_role else None
        task_definition = self._provisioner.task_definition(
            name,
            image=self.image_uri(image),
            cpu=cpu,
            memory=memory,
            container_memory=container_memory,
            execution_role_arn=role_arn,
            fargate=not ec2,
            awsvpc=awsvpc,
            host_port=host_port,
            log_group=log_group,
        )
        params: dict[str, Any] = {
            "cluster": cluster,
            "serviceName": name,
            "taskDefinition": task_definition,
            "desiredCount": desired_count,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": circuit_breaker[0], "rollback": circuit_breaker[1]},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
            "propagateTags": "NONE",
            "enableECSManagedTags": True,
        }
        if not ec2:
            params["launchType"] = "FARGATE"
        if awsvpc:
            params["networkConfiguration"] = {
                "awsvpcConfiguration": {
                    "subnets": [s for s, _ in self.network.subnets],
                    "securityGroups": [self.network.security_group],
                    "assignPublicIp": "DISABLED",
                }
            }
        if load_balanced:
            group = self._provisioner.target_group(name, self.network, health_check or HealthCheck())
            params["loadBalancers"] = [{"targetGroupArn": group, "containerName": "app", "containerPort": 8080}]
            params["healthCheckGracePeriodSeconds"] = grace_period if grace_period is not None else 0
        elif grace_period is not None:
            params["healthCheckGracePeriodSeconds"] = grace_period
        if tags:
            params["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        created = self._internal_client("ecs").create_service(**params)
        arn: str = created["service"]["serviceArn"]
        return arn

    def deploy(
        self,
        cluster: str,
        service: str,
        *,
        image: str | None = None,
        cpu: int | None = None,
        memory: int | None = None,
        container_memory: int | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> str:
        """What a CI pipeline does: register the next revision with `image` (or sizes, or `secrets`:
        environment variable -> Secrets Manager ARN) changed and UpdateService to it. Returns the new
        task definition ARN."""
        ecs = self._internal_client("ecs")
        current = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"]
        revision = self._provisioner.revise(
            current,
            image=self.image_uri(image) if image else None,
            cpu=cpu,
            memory=memory,
            container_memory=container_memory,
            secrets=secrets,
        )
        ecs.update_service(cluster=cluster, service=service, taskDefinition=revision)
        return revision

    def scale(self, cluster: str, service: str, desired_count: int) -> None:
        """Change a service's desired count, as Application Auto Scaling or an operator would."""
        self._internal_client("ecs").update_service(cluster=cluster, service=service, desiredCount=desired_count)

    def configure_events_queue(self, queue_name: str = "ecs-events") -> str:
        """An SQS queue and an EventBridge rule delivering every `aws.ecs` event to it; returns its URL."""
        sqs, events = self._internal_client("sqs"), self._internal_client("events")
        url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"{queue_name}-rule"
        events.put_rule(Name=rule, EventPattern='{"source": ["aws.ecs"]}', State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
        self.events_queue_url = url
        return url

    def add_approval_key(self, approver_role: str = "ecs-medic-approver") -> str:
        """An asymmetric KMS key approvals are signed with, and a role approvers assume; returns the key id.
        The agent's own identity (the world's default credentials) is not that role."""
        key: str = self._internal_client("kms").create_key(
            KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="ecs-medic approvals"
        )["KeyMetadata"]["KeyId"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": self.account_id}, "Action": "sts:AssumeRole"}],
        }
        self._internal_client("iam").create_role(RoleName=approver_role, AssumeRolePolicyDocument=json.dumps(trust))
        self.approver_role = approver_role
        return key

    def approver_environment(self, session_name: str = "alice") -> dict[str, str]:
        """The environment of a person who assumed the approver role (for `ecs-medic approve`)."""
        arn = f"arn:aws:iam::{self.account_id}:role/{self.approver_role}"
        credentials = self.client("sts").assume_role(RoleArn=arn, RoleSessionName=session_name)["Credentials"]
        return {
            **self.environment,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }

    def approver_session(self, session_name: str = "alice") -> boto3.session.Session:
        env = self.approver_environment(session_name)
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )

    # --- reading ---------------------------------------------------------------------------------------------

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        """DescribeServices for one service (with tags), as a client would see it."""
        described = self._internal_client("ecs").describe_services(
            cluster=cluster, services=[service], include=["TAGS"]
        )
        found: dict[str, Any] = described["services"][0]
        return found

    def service_state(self, cluster: str, service: str) -> ServiceState:
        described = self.describe_service(cluster, service)
        primary = next((d for d in described.get("deployments", []) if d.get("status") == "PRIMARY"), None)
        return ServiceState(
            running=int(described.get("runningCount", 0)),
            desired=int(described.get("desiredCount", 0)),
            pending=int(described.get("pendingCount", 0)),
            rollout_state=primary.get("rolloutState") if primary else None,
            deployments=len(described.get("deployments", [])),
            task_definition=str(described.get("taskDefinition", "")),
        )

    def stopped_tasks(self, cluster: str, service: str) -> list[dict[str, Any]]:
        """DescribeTasks of the service's stopped tasks still retained, newest first."""
        ecs = self._internal_client("ecs")
        arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])["tasks"]
        return sorted(tasks, key=_stopped_at, reverse=True)

    def fingerprint(self) -> fingerprints.Fingerprint:
        """Everything a client could change, as a comparable digest (see `agent.sim.fingerprint`)."""
        with self._lock:
            return fingerprints.take(REGION)


def _stopped_at(task: dict[str, Any]) -> datetime:
    stamp = task.get("stoppedAt") or task.get("createdAt")
    return stamp if isinstance(stamp, datetime) else datetime.min.replace(tzinfo=UTC)
