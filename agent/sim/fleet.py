"""A large estate in seconds: thousands of services across a few clusters, for benchmarks.

Building 2,000 services through HTTP would take minutes of setup calls, so the fleet creates them in
process (through `moto_bridge`), with tasks that have been running for a while; a chosen fraction then
gets a broken deploy, exactly as through UpdateService. What clients see afterwards is the same as
for services built one by one.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from agent.sim import lifecycle
from agent.sim import moto_bridge as bridge
from agent.sim.profiles import AppProfile
from agent.sim.provision import APP_CONTAINER, APP_PORT, image_manifest
from agent.sim.state import SimTask

if TYPE_CHECKING:
    from agent.sim.world import World

# How long the fleet's tasks have been running when the fleet appears.
_UPTIME = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """services: in total, spread evenly over `clusters`; failing_fraction: share of services that get
    a deploy of an image tag that was never pushed (seeded choice); desired_count: tasks per service."""

    services: int = 2000
    clusters: int = 4
    desired_count: int = 2
    failing_fraction: float = 0.0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Fleet:
    clusters: tuple[str, ...]
    services: tuple[tuple[str, str], ...]  # (cluster, service)
    failing: tuple[tuple[str, str], ...] = field(default=())
    build_seconds: float = 0.0


def build_fleet(world: World, spec: FleetSpec | None = None) -> Fleet:
    """Create the fleet in `world`; its failing services are already failing when this returns."""
    spec = spec or FleetSpec()
    started = time.perf_counter()
    runtime = world._runtime  # the fleet is the world's own fast path
    region = world.region
    role = f"arn:aws:iam::{world.account_id}:role/ecsTaskExecutionRole"
    network = {
        "awsvpcConfiguration": {
            "subnets": [s for s, _ in world.network.subnets],
            "securityGroups": [world.network.security_group],
            "assignPublicIp": "DISABLED",
        }
    }
    clusters = tuple(f"fleet-{index + 1}" for index in range(spec.clusters))
    services: list[tuple[str, str]] = []
    with world._lock:
        for cluster in clusters:
            runtime.cluster_arns[cluster] = bridge.create_cluster_in_process(region, cluster)
            bridge.create_log_group_in_process(region, f"/ecs/{cluster}")
        now = runtime.now
        born = now - _UPTIME
        for index in range(spec.services):
            cluster = clusters[index % len(clusters)]
            name = f"svc-{index:04d}"
            image = _push(world, name, "v1", AppProfile())
            definition = _definition(image, role, cluster)
            arn = bridge.register_task_definition_in_process(region, name, definition)
            bridge.create_service_in_process(
                region,
                cluster=cluster,
                name=name,
                task_definition=arn,
                desired_count=spec.desired_count,
                launch_type="FARGATE",
                load_balancers=[],
                network_configuration=network,
                tags=[{"key": "team", "value": f"team-{index % 17}"}],
            )
            config = bridge.service_config(region, cluster, name)
            assert config is not None  # noqa: S101 - just created
            service = runtime.adopt(config, {"launchType": "FARGATE"}, born)
            deployment = service.primary
            deployment.created_at = deployment.updated_at = born
            for _ in range(spec.desired_count):
                task = runtime.create_task(service, deployment, born)
                assert isinstance(task, SimTask)  # noqa: S101 - Fargate always places
                lifecycle.advance(task, now, runtime)
                service.tasks[task.task_id] = task
            service.events.clear()
            services.append((cluster, name))
        runtime.tick(now)
    failing = _break_some(world, services, spec)
    return Fleet(clusters, tuple(services), failing, time.perf_counter() - started)


def _push(world: World, repository: str, tag: str, profile: AppProfile) -> str:
    bridge.push_image_in_process(world.region, repository, tag, image_manifest(repository, tag))
    uri = f"{world.account_id}.dkr.ecr.{world.region}.amazonaws.com/{repository}:{tag}"
    world._runtime.profiles[uri] = profile
    return uri


def _definition(image: str, role: str, cluster: str) -> dict[str, object]:
    return {
        "containerDefinitions": [
            {
                "name": APP_CONTAINER,
                "image": image,
                "essential": True,
                "portMappings": [{"containerPort": APP_PORT, "protocol": "tcp"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": f"/ecs/{cluster}", "awslogs-stream-prefix": "ecs"},
                },
            }
        ],
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": role,
    }


def _break_some(world: World, services: list[tuple[str, str]], spec: FleetSpec) -> tuple[tuple[str, str], ...]:
    count = round(spec.failing_fraction * len(services))
    if count <= 0:
        return ()
    chosen = sorted(random.Random(spec.seed).sample(services, count))  # noqa: S311 - reproducible choice
    runtime = world._runtime  # the fleet is the world's own fast path
    role = f"arn:aws:iam::{world.account_id}:role/ecsTaskExecutionRole"
    with world._lock:
        for cluster, name in chosen:
            image = f"{world.account_id}.dkr.ecr.{world.region}.amazonaws.com/{name}:v2"  # never pushed
            arn = bridge.register_task_definition_in_process(world.region, name, _definition(image, role, cluster))
            bridge.write_service(world.region, cluster, name, task_definition=arn)
        runtime.sync_configs(runtime.now)
    world.advance(120)
    return tuple(chosen)
