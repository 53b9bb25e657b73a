"""What clients see of the runtime: tasks, services and clusters written onto moto's records (so that
DescribeTasks, DescribeServices and DescribeClusters show them), and the EventBridge events ECS
sends when they change."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from agent.sim import eventbridge, projection
from agent.sim import moto_bridge as bridge
from agent.sim.state import RUNNING, STOPPED

if TYPE_CHECKING:
    from datetime import datetime

    from agent.sim.capacity import Capacity
    from agent.sim.eventbridge import Entry
    from agent.sim.index import TaskIndex
    from agent.sim.state import SimService, SimTask


class Projector:
    """Writes what changed since the last projection; collects the events the changes send."""

    def __init__(
        self,
        *,
        region: str,
        services: dict[tuple[str, str], SimService],
        cluster_arns: dict[str, str],
        capacity: Capacity,
        index: TaskIndex,
        clock: Callable[[], datetime],
    ) -> None:
        self.region = region
        self._services = services
        self._cluster_arns = cluster_arns
        self._capacity = capacity
        self._index = index
        self._clock = clock
        self._events: list[Entry] = []
        self.events_wanted = False  # events are built only when a rule could deliver them
        # What each service last contributed to its cluster's counts (running, pending, active), and
        # the clusters' totals: DescribeClusters' counts without walking every service of a cluster.
        self._contributions: dict[tuple[str, str], tuple[int, int, int]] = {}
        self._totals: dict[str, list[int]] = {}

    def publish(self, entry: Entry) -> None:
        if self.events_wanted:
            self._events.append(entry)

    def take_events(self) -> list[Entry]:
        """The events sent since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def project(self, services: Iterable[SimService] | None = None) -> None:
        """Every task and service marked dirty, and the clusters they belong to; only among `services`
        when the caller knows which can have changed (the ones a pass reconciled)."""
        touched_clusters: set[str] = set()
        for service in self._services.values() if services is None else services:
            touched = service.dirty
            for task in service.tasks.values():
                if task.dirty:
                    self.task(task)
                    touched = True
            if touched:
                self.service(service)
                touched_clusters.add(service.cluster)
        for cluster in touched_clusters:
            self.cluster(cluster)

    def task(self, task: SimTask) -> None:
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
            if self.events_wanted:
                self.publish(
                    eventbridge.task_state_change(
                        view, task_arn=task.arn, cluster_arn=self._cluster_arns[task.cluster], at=self._clock()
                    )
                )
        if task.last_status == STOPPED:
            self._index.released(task)
        task.dirty = False

    def service(self, service: SimService) -> None:
        self._count(service)
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

    def _count(self, service: SimService) -> None:
        if service.deleted:
            counted = (0, 0, 0)
        else:
            tasks = service.tasks.values()
            counted = (sum(1 for t in tasks if t.last_status == RUNNING), sum(1 for t in tasks if t.pending), 1)
        key = (service.cluster, service.name)
        before = self._contributions.get(key, (0, 0, 0))
        if counted != before:
            totals = self._totals.setdefault(service.cluster, [0, 0, 0])
            for index in range(3):
                totals[index] += counted[index] - before[index]
            self._contributions[key] = counted

    def cluster(self, cluster: str) -> None:
        running, pending, services = self._totals.get(cluster, (0, 0, 0))
        bridge.write_cluster_counts(
            self.region,
            cluster,
            running=running,
            pending=pending,
            services=services,
            instances=len(self._capacity.registered(cluster)),
        )
        if cluster in self._capacity.clusters:
            self._capacity.project(cluster, self._index.holding(cluster))
