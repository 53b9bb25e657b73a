"""One simulated AWS account of the world: its ECS runtime, its network, builders and read helpers.

`World` is the default account (123456789012) plus the endpoint and the clock; `World.add_account`
adds others that live on the same endpoint and clock. Each account's resources are its own, as in AWS:
a client reaches them with that account's credentials (from AssumeRole on a role the account trusts,
see `add_assumable_role`), and the world's own builders name the account on each request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config

from agent.sim import fingerprint as fingerprints
from agent.sim import moto_bridge as bridge
from agent.sim.capacity import BOOT_DELAY, Ec2Cluster
from agent.sim.health import HealthCheck
from agent.sim.middleware import ACCOUNT_HEADER, INTERNAL_HEADER
from agent.sim.network import NetworkBuilder
from agent.sim.policy_simulator import WorldApis
from agent.sim.profiles import AppProfile
from agent.sim.provision import Ec2Capacity, Network, Provisioner
from agent.sim.runtime import Runtime, Subnet
from agent.sim.wire import WireHooks

if TYPE_CHECKING:
    from collections.abc import Mapping

REGION = "us-east-1"
FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # noqa: S105 - moto's conventional fake credential
DEFAULT_EXECUTION_ROLE = "ecsTaskExecutionRole"


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


class Endpoint(Protocol):
    endpoint_url: str  # known once the world serves


class Account:
    """A simulated account in the world's Region. Builders go through the public APIs (recorded as the
    world's own, not a client's), except where a large estate needs the in-process fast path."""

    region: str = REGION

    def __init__(
        self,
        *,
        account_id: str,
        lock: threading.RLock,
        endpoint: Endpoint,
        seed: int,
        start_time: datetime,
    ) -> None:
        self.account_id = account_id
        self.events_queue_url: str | None = None
        self._lock = lock
        self._endpoint = endpoint
        self._runtime = Runtime(region=REGION, account_id=account_id, start=start_time, seed=seed)
        self.hooks = WorldApis(WireHooks(self._runtime))
        self._session = _session()
        self._internal: dict[str, Any] = {}
        self._provisioner = Provisioner(self._internal_client, REGION, account_id)
        self._network: Network | None = None
        self._net: NetworkBuilder | None = None

    def _build_network(self) -> None:
        self._network = self._provisioner.network()
        self._net = NetworkBuilder(self._internal_client, REGION, self._network)
        self._net.default_egress()
        self._runtime.subnets = [
            Subnet(subnet_id, zone, base)
            for (subnet_id, zone), base in zip(self._network.subnets, (0, 64), strict=True)
        ]
        self.add_execution_role(DEFAULT_EXECUTION_ROLE)

    # --- clients ---------------------------------------------------------------------------------------------

    def client(self, service_name: str, *, config: Config | None = None) -> Any:  # noqa: ANN401 - boto3 clients are untyped
        """A boto3 client for this account on the world's endpoint, with fake credentials. Its requests
        are recorded."""
        with _session_lock:
            client = self._session.client(service_name, endpoint_url=self._endpoint.endpoint_url, config=config)
        if self.account_id != bridge.ACCOUNT_ID:
            client.meta.events.register("before-sign.*.*", self._name_account)
        return client

    def _name_account(self, request: Any, **_: Any) -> None:  # noqa: ANN401 - botocore's hook signature
        request.headers[ACCOUNT_HEADER] = self.account_id

    def _internal_client(self, service_name: str) -> Any:  # noqa: ANN401
        client = self._internal.get(service_name)
        if client is None:
            with _session_lock:
                client = self._session.client(
                    service_name,
                    endpoint_url=self._endpoint.endpoint_url,
                    config=Config(retries={"total_max_attempts": 1}),
                )
            account = self.account_id

            def mark(request: Any, **_: Any) -> None:  # noqa: ANN401 - botocore's hook signature
                request.headers[INTERNAL_HEADER] = "1"
                request.headers[ACCOUNT_HEADER] = account

            client.meta.events.register("before-sign.*.*", mark)
            self._internal[service_name] = client
        return client

    # --- builders --------------------------------------------------------------------------------------------

    @property
    def network(self) -> Network:
        assert self._network is not None  # noqa: S101 - built by start()
        return self._network

    @property
    def net(self) -> NetworkBuilder:
        """The task subnets' way out (NAT by default): break it, or add VPC endpoints."""
        assert self._net is not None  # noqa: S101 - built by start()
        return self._net

    def add_approval_key(self, approver_role: str = "ecs-medic-approver") -> str:
        """An asymmetric KMS key approvals are signed with, and a role approvers assume; returns the key id.
        The agent's own identity (the account's default credentials) is not that role."""
        key: str = self._internal_client("kms").create_key(
            KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="ecs-medic approvals"
        )["KeyMetadata"]["KeyId"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": self.account_id}, "Action": "sts:AssumeRole"}],
        }
        self._internal_client("iam").create_role(RoleName=approver_role, AssumeRolePolicyDocument=json.dumps(trust))
        return key

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
        with self._lock, bridge.in_account(self.account_id):
            runtime = self._runtime
            runtime.cluster_arns[name] = f"arn:aws:ecs:{self.region}:{self.account_id}:cluster/{name}"
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
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{image}"

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

    def add_assumable_role(
        self,
        name: str,
        *,
        trusted_account: str,
        external_id: str | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> str:
        """A role in this account that `trusted_account` may assume (with `external_id`, when given), with
        `policy` inline (default: none); returns its ARN. The world's STS enforces the trust policy."""
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{trusted_account}:root"},
            "Action": "sts:AssumeRole",
        }
        if external_id is not None:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        iam = self._internal_client("iam")
        document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)["Role"]["Arn"]
        if policy is not None:
            iam.put_role_policy(RoleName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        return arn

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
        with self._lock, bridge.in_account(self.account_id):
            return fingerprints.take(self.region)


def _stopped_at(task: dict[str, Any]) -> datetime:
    stamp = task.get("stoppedAt") or task.get("createdAt")
    return stamp if isinstance(stamp, datetime) else datetime.min.replace(tzinfo=UTC)
