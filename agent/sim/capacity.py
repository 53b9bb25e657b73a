"""EC2 capacity behind capacity providers: instances that boot and register, what each has left, and
managed scaling.

moto launches an Auto Scaling group's instances the moment its desired capacity changes; the world
registers each with ECS only `BOOT_DELAY` later, as the ECS agent would after booting. When a
capacity provider's managed scaling is ENABLED, the world itself raises the group's desired capacity
toward what the unplaced tasks need, within the group's minimum and maximum (scale-out only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agent.sim import moto_bridge as bridge
from agent.sim.placement import InstanceCapacity, TaskNeeds, instances_needed
from agent.sim.state import SimInstance, SimTask

if TYPE_CHECKING:
    from collections.abc import Iterable

BOOT_DELAY = timedelta(seconds=90)
SCALING_COOLDOWN = timedelta(seconds=60)


@dataclass(slots=True)
class Ec2Cluster:
    """A cluster whose capacity provider is backed by an Auto Scaling group of one instance size."""

    name: str
    asg_name: str
    capacity_provider: str
    instance_cpu: int
    instance_memory: int
    last_scaled_at: datetime | None = None
    unplaced: list[TaskNeeds] = field(default_factory=list)  # tasks the last pass could not place


class Capacity:
    def __init__(self, region: str) -> None:
        self.region = region
        self.clusters: dict[str, Ec2Cluster] = {}
        self.instances: dict[str, SimInstance] = {}  # by EC2 instance id

    def add_cluster(self, cluster: Ec2Cluster) -> None:
        self.clusters[cluster.name] = cluster

    def registered(self, cluster: str) -> list[SimInstance]:
        return [i for i in self.instances.values() if i.cluster == cluster and i.container_instance_id]

    def sync(self, now: datetime) -> list[str]:
        """Follow the groups: register booted instances, forget terminated ones. Returns the EC2 ids of
        instances that went away (their tasks die with them)."""
        gone: list[str] = []
        for cluster in self.clusters.values():
            group = bridge.auto_scaling_group(self.region, cluster.asg_name)
            live = set(group.instance_ids) if group is not None else set()
            for instance_id in group.instance_ids if group is not None else ():
                if instance_id not in self.instances:
                    self.instances[instance_id] = SimInstance(
                        instance_id, cluster.name, cluster.asg_name, now, cluster.instance_cpu, cluster.instance_memory
                    )
            for instance in [i for i in self.instances.values() if i.cluster == cluster.name]:
                if instance.ec2_instance_id not in live:
                    if instance.container_instance_id:
                        bridge.deregister_container_instance(self.region, cluster.name, instance.container_instance_id)
                    del self.instances[instance.ec2_instance_id]
                    gone.append(instance.ec2_instance_id)
                elif instance.container_instance_id is None and now >= instance.first_seen + BOOT_DELAY:
                    instance.container_instance_id = bridge.register_container_instance(
                        self.region, cluster.name, instance.ec2_instance_id, instance.cpu, instance.memory
                    )
        return gone

    def free(self, cluster: str, tasks: Iterable[SimTask]) -> list[InstanceCapacity]:
        """What each registered instance of `cluster` has left, given the tasks holding resources."""
        used: dict[str, list[SimTask]] = {}
        for task in tasks:
            if task.container_instance_id and task.holds_resources and task.needs is not None:
                used.setdefault(task.container_instance_id, []).append(task)
        capacities = []
        for instance in self.registered(cluster):
            assert instance.container_instance_id is not None  # noqa: S101 - registered() guarantees it
            on_it = used.get(instance.container_instance_id, [])
            capacities.append(
                InstanceCapacity(
                    container_instance_id=instance.container_instance_id,
                    cpu_free=instance.cpu - sum(t.needs.cpu for t in on_it if t.needs),
                    memory_free=instance.memory - sum(t.needs.memory for t in on_it if t.needs),
                    ports_used=frozenset(p for t in on_it if t.needs for p in t.needs.ports),
                    running_tasks=len(on_it),
                )
            )
        return capacities

    def project(self, cluster: str, tasks: Iterable[SimTask]) -> None:
        """Write each instance's remaining resources and task counts for DescribeContainerInstances."""
        task_list = list(tasks)
        for free in self.free(cluster, task_list):
            on_it = [
                t for t in task_list if t.container_instance_id == free.container_instance_id and t.holds_resources
            ]
            bridge.write_container_instance(
                self.region,
                cluster,
                free.container_instance_id,
                cpu_free=free.cpu_free,
                memory_free=free.memory_free,
                host_ports=free.ports_used | {c.host_port for t in on_it for c in t.containers if c.host_port},
                running=sum(1 for t in on_it if t.last_status == "RUNNING"),
                pending=sum(1 for t in on_it if t.last_status in ("PROVISIONING", "PENDING")),
            )

    def instance(self, container_instance_id: str) -> SimInstance | None:
        return next((i for i in self.instances.values() if i.container_instance_id == container_instance_id), None)

    def managed_scaling(self, now: datetime, tasks_by_cluster: dict[str, list[SimTask]]) -> None:
        """Scale each group with managed scaling ENABLED out toward the capacity its tasks need."""
        providers = {p.name: p for p in bridge.capacity_providers(self.region)}
        for cluster in self.clusters.values():
            provider = providers.get(cluster.capacity_provider)
            needs = cluster.unplaced
            if provider is None or not needs or provider.managed_scaling.get("status") != "ENABLED":
                continue
            if cluster.last_scaled_at and now - cluster.last_scaled_at < SCALING_COOLDOWN:
                continue
            group = bridge.auto_scaling_group(self.region, cluster.asg_name)
            if group is None:
                continue
            busy = {t.container_instance_id for t in tasks_by_cluster.get(cluster.name, []) if t.holds_resources}
            in_use = sum(
                1 for i in self.instances.values() if i.cluster == cluster.name and i.container_instance_id in busy
            )
            booting = sum(
                1 for i in self.instances.values() if i.cluster == cluster.name and not i.container_instance_id
            )
            extra = instances_needed(needs, cluster.instance_cpu, cluster.instance_memory)
            target = max(1, int(provider.managed_scaling.get("targetCapacity", 100)))
            wanted = math.ceil((in_use + extra) * 100 / target)
            step = int(provider.managed_scaling.get("maximumScalingStepSize", 10000))
            desired = min(group.max_size, max(group.min_size, wanted, group.desired), group.desired + step)
            if desired > group.desired and booting == 0:
                bridge.set_desired_capacity(self.region, cluster.asg_name, desired)
                cluster.last_scaled_at = now
