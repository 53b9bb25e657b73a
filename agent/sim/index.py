"""Where the runtime finds its tasks again: by id (the wire fix-ups), the EC2 tasks holding an instance's
resources (placement, capacity), and the task behind each load-balancer target (target health)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent.sim.state import SimTask


@dataclass
class TaskIndex:
    by_id: dict[str, SimTask] = field(default_factory=dict)
    holders: dict[str, dict[str, SimTask]] = field(default_factory=dict)  # EC2 tasks holding resources, by cluster
    targets: dict[tuple[str, str], SimTask] = field(default_factory=dict)  # (target group ARN, target id)

    def add(self, task: SimTask, *, holds_resources: bool) -> None:
        self.by_id[task.task_id] = task
        if holds_resources:
            self.holders.setdefault(task.cluster, {})[task.task_id] = task
        if task.target is not None:
            self.targets[(task.target.target_group_arn, task.target.target_id)] = task

    def holding(self, cluster: str) -> Iterable[SimTask]:
        return self.holders.get(cluster, {}).values()

    def released(self, task: SimTask) -> None:
        """The task stopped: its instance's resources are free again."""
        self.holders.get(task.cluster, {}).pop(task.task_id, None)

    def forget(self, task: SimTask) -> None:
        """The task expired (ECS forgets stopped tasks after an hour)."""
        self.by_id.pop(task.task_id, None)
