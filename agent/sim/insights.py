"""Container Insights: the memory each running task holds, published to CloudWatch once a minute.

Clusters whose `containerInsights` setting is `enabled` (or `enhanced`) report, for every running
task, `MemoryUtilized` (MiB) in the `ECS/ContainerInsights` namespace with the `ClusterName` and
`ServiceName` dimensions, as the real service does: clients read it back with GetMetricData, and the
`Maximum` statistic is the busiest task's. What a task holds comes from its image's `AppProfile`
(`agent.sim.profiles.memory_used`), never above its container's hard limit (the kernel kills it there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from moto.cloudwatch.models import cloudwatch_backends
from moto.ecs.models import ecs_backends

from agent.sim.moto_bridge import ACCOUNT_ID
from agent.sim.profiles import AppProfile, memory_used
from agent.sim.state import RUNNING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from agent.sim.state import SimService, SimTask

NAMESPACE = "ECS/ContainerInsights"
PERIOD = timedelta(seconds=60)


def insights_clusters(region: str) -> set[str]:
    """The clusters whose Container Insights setting is on."""
    clusters = ecs_backends[ACCOUNT_ID][region].clusters.values()
    return {
        c.name
        for c in clusters
        if any(s.get("name") == "containerInsights" and s.get("value") in ("enabled", "enhanced") for s in c.settings)
    }


def task_memory(task: SimTask, profiles: Mapping[str, AppProfile], now: datetime) -> float | None:
    """MiB the task's essential container holds at `now`; None if it is not running."""
    if task.last_status != RUNNING or task.started_at is None:
        return None
    container = next((c for c in task.containers if c.essential), task.containers[0])
    used = memory_used(profiles.get(container.image, AppProfile()), (now - task.started_at).total_seconds())
    limit = container.memory or (int(task.memory) if task.memory else None)
    return min(used, float(limit)) if limit else used


class ContainerInsights:
    """Samples every running task of the clusters that have Container Insights on, once per `PERIOD`."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._last: datetime | None = None

    def collect(self, now: datetime, services: Iterable[SimService], profiles: Mapping[str, AppProfile]) -> None:
        if self._last is not None and now - self._last < PERIOD:
            return
        self._last = now
        clusters = insights_clusters(self.region)
        if not clusters:
            return
        stamp = now.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC times and compares with them
        data = []
        for service in services:
            if service.cluster not in clusters:
                continue
            dimensions = [
                {"Name": "ClusterName", "Value": service.cluster},
                {"Name": "ServiceName", "Value": service.name},
            ]
            for task in service.tasks.values():
                used = task_memory(task, profiles, now)
                if used is not None:
                    data.append(
                        {
                            "MetricName": "MemoryUtilized",
                            "Value": round(used, 1),
                            "Unit": "Megabytes",
                            "Timestamp": stamp,
                            "Dimensions": dimensions,
                        }
                    )
        if data:
            cloudwatch_backends[ACCOUNT_ID][self.region].put_metric_data(NAMESPACE, data)
