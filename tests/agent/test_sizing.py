"""The arithmetic of sizing a fix from evidence, as properties (the end-to-end behaviour is in
tests/e2e/test_healing.py, against the simulated world)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.actions.scale_capacity_provider import Resources, size_from_evidence, task_needs
from agent.model import ServiceView
from agent.verdict import shortfall


def _resources(cpu: int, memory: int) -> list[dict[str, Any]]:
    return [{"name": "CPU", "type": "INTEGER", "integerValue": cpu}, {"name": "MEMORY", "integerValue": memory}]


def ec2_service(
    *,
    desired: int,
    running: int,
    need: tuple[int, int],
    size: tuple[int, int],
    free: list[tuple[int, int]],
    booting: int,
) -> tuple[ServiceView, dict[str, Any]]:
    instances = [
        {
            "ec2InstanceId": f"i-{index:017x}",
            "status": "ACTIVE",
            "agentConnected": True,
            "registeredResources": _resources(*size),
            "remainingResources": _resources(*left),
        }
        for index, left in enumerate(free)
    ]
    group = {
        "AutoScalingGroupName": "etl-asg",
        "DesiredCapacity": len(free) + booting,
        "MaxSize": len(free) + booting,
        "Instances": [{"InstanceId": i["ec2InstanceId"]} for i in instances]
        + [{"InstanceId": f"i-b{index:016x}"} for index in range(booting)],
    }
    description = {
        "serviceName": "ingest",
        "desiredCount": desired,
        "runningCount": running,
        "deployments": [
            {
                "status": "PRIMARY",
                "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/ingest:1",
                "desiredCount": desired,
                "runningCount": running,
                "pendingCount": 0,
            }
        ],
    }
    definition = {"family": "ingest", "cpu": str(need[0]), "memory": str(need[1]), "containerDefinitions": []}
    view = ServiceView(
        cluster="etl",
        name="ingest",
        description=description,
        tags={},
        task_definitions={"ingest:1": definition},
        container_instances=tuple(instances),
    )
    return view, group


sizes = st.tuples(st.sampled_from([1024, 2048, 4096, 8192]), st.sampled_from([2048, 4096, 8192, 16384]))
needs = st.tuples(st.sampled_from([256, 512, 1024, 2048, 4096]), st.sampled_from([512, 1024, 2048, 4096]))


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    """A service short of tasks on a group of equal instances, some of them still booting."""
    size = draw(sizes)
    desired = draw(st.integers(1, 60))
    return {
        "desired": desired,
        "running": draw(st.integers(0, desired)),
        "need": draw(needs),
        "size": size,
        "free": draw(st.lists(st.tuples(st.integers(0, size[0]), st.integers(0, size[1])), min_size=1, max_size=6)),
        "booting": draw(st.integers(0, 3)),
    }


@given(fleets())
def test_the_instances_added_are_the_fewest_that_hold_every_task(case):
    desired, running, need, size, free, booting = (
        case["desired"], case["running"], case["need"], case["size"], case["free"], case["booting"]
    )  # fmt: skip
    view, group = ec2_service(desired=desired, running=running, need=need, size=size, free=free, booting=booting)
    sizing = size_from_evidence(view, group)
    missing = desired - running
    if missing == 0:
        assert sizing is None
        return
    assert sizing is not None
    task, instance = Resources(*need), Resources(*size)
    per_instance = instance.holds(task)
    if per_instance == 0:
        assert sizing.add == 0
        assert "more than an instance of the group registers" in sizing.why
        return
    room = sum(Resources(*left).holds(task) for left in free) + booting * per_instance
    assert room + sizing.add * per_instance >= missing  # enough
    assert sizing.add == 0 or room + (sizing.add - 1) * per_instance < missing  # and not one more
    assert sizing.add == max(0, math.ceil((missing - room) / per_instance))


def test_shortfall_counts_every_deployment():
    view, _ = ec2_service(desired=6, running=4, need=(1024, 512), size=(2048, 8192), free=[(0, 0)], booting=0)
    old = {"status": "ACTIVE", "desiredCount": 2, "runningCount": 1, "pendingCount": 0}
    both = ServiceView(
        cluster=view.cluster,
        name=view.name,
        description={**view.description, "deployments": [*view.deployments, old]},
        tags={},
    )
    assert shortfall(both) == 3


def test_task_needs_fall_back_to_the_containers():
    assert task_needs({"cpu": "1024", "memory": "2048"}) == Resources(1024, 2048)
    containers = [{"cpu": 256, "memory": 512}, {"cpu": 128, "memoryReservation": 256}]
    assert task_needs({"containerDefinitions": containers}) == Resources(384, 768)
    assert task_needs({"containerDefinitions": []}) is None
