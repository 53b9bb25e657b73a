"""Task placement on EC2 container instances: pure functions of free capacity and a task's needs.

ECS checks CPU, then memory, then host ports on every ACTIVE instance. When none fits, its service
event names the *closest* instance and the first resource that instance lacks; `place` reproduces
that choice so the event reads as ECS would write it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Resource = Literal["CPU", "MEMORY", "PORTS"]


@dataclass(frozen=True, slots=True)
class InstanceCapacity:
    """What one container instance has left."""

    container_instance_id: str
    cpu_free: int
    memory_free: int
    ports_used: frozenset[int] = frozenset()
    running_tasks: int = 0


@dataclass(frozen=True, slots=True)
class TaskNeeds:
    """What one task reserves: CPU units, MiB of memory and static host ports."""

    cpu: int
    memory: int
    ports: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Placed:
    container_instance_id: str


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """No instance fits. `closest` is None when the cluster has no instance at all."""

    closest: str | None
    resource: Resource | None


def lacking(needs: TaskNeeds, instance: InstanceCapacity) -> list[Resource]:
    """The resources `instance` is short of, in the order ECS checks them."""
    short: list[Resource] = []
    if needs.cpu > instance.cpu_free:
        short.append("CPU")
    if needs.memory > instance.memory_free:
        short.append("MEMORY")
    if needs.ports & instance.ports_used:
        short.append("PORTS")
    return short


def _shortfall(needs: TaskNeeds, instance: InstanceCapacity) -> float:
    cpu = max(0, needs.cpu - instance.cpu_free) / max(needs.cpu, 1)
    memory = max(0, needs.memory - instance.memory_free) / max(needs.memory, 1)
    return cpu + memory + len(needs.ports & instance.ports_used)


def place(needs: TaskNeeds, instances: Sequence[InstanceCapacity]) -> Placed | Unplaceable:
    """Where the task goes: spread across instances (fewest tasks first, then most free CPU), as the
    default service strategy does; or why it cannot go anywhere."""
    if not instances:
        return Unplaceable(closest=None, resource=None)
    fitting = [i for i in instances if not lacking(needs, i)]
    if fitting:
        best = min(fitting, key=lambda i: (i.running_tasks, -i.cpu_free, -i.memory_free, i.container_instance_id))
        return Placed(best.container_instance_id)
    closest = min(instances, key=lambda i: (len(lacking(needs, i)), _shortfall(needs, i), i.container_instance_id))
    return Unplaceable(closest=closest.container_instance_id, resource=lacking(needs, closest)[0])


def instances_needed(needs: Sequence[TaskNeeds], instance_cpu: int, instance_memory: int) -> int:
    """How many empty instances of one size hold `needs` (first fit, largest first): the capacity that
    managed scaling asks the Auto Scaling group for."""
    bins: list[list[int]] = []
    for need in sorted(needs, key=lambda n: (n.cpu, n.memory), reverse=True):
        if need.cpu > instance_cpu or need.memory > instance_memory:
            continue  # fits no instance of this size: more instances would not help
        for free in bins:
            if free[0] >= need.cpu and free[1] >= need.memory:
                free[0] -= need.cpu
                free[1] -= need.memory
                break
        else:
            bins.append([instance_cpu - need.cpu, instance_memory - need.memory])
    return len(bins)
