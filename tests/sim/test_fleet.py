"""A large estate built in process looks, through the API, like one built service by service."""

from __future__ import annotations

from collections import Counter

from agent.diagnose import diagnose_service, dominant_cause
from agent.model import Cause
from agent.sim import FleetSpec, World, build_fleet


def test_a_fleet_with_failing_services(world: World) -> None:
    fleet = build_fleet(world, FleetSpec(services=40, clusters=4, failing_fraction=0.25, seed=3))
    assert len(fleet.services) == 40 and len(fleet.failing) == 10
    assert Counter(cluster for cluster, _ in fleet.services) == dict.fromkeys(fleet.clusters, 10)

    ecs = world.client("ecs")
    arns = [a for page in ecs.get_paginator("list_services").paginate(cluster="fleet-1") for a in page["serviceArns"]]
    assert len(arns) == 10
    healthy = next(s for s in fleet.services if s not in fleet.failing)
    assert world.service_state(*healthy).steady
    tasks = ecs.describe_tasks(
        cluster=healthy[0], tasks=ecs.list_tasks(cluster=healthy[0], serviceName=healthy[1])["taskArns"]
    )["tasks"]
    assert all(t["startedAt"] < world.now for t in tasks)

    for cluster, service in fleet.failing[:3]:
        described = world.describe_service(cluster, service)
        assert described["deployments"][0]["rolloutState"] == "IN_PROGRESS"
        findings = diagnose_service(described, world.stopped_tasks(cluster, service))
        assert dominant_cause(findings) is Cause.IMAGE_NOT_FOUND
