"""scale_capacity_provider: add the container instances the tasks that cannot be placed need, in one change.

Sized from evidence: the tasks the service wants but has neither running nor starting (across its
deployments), what one task needs (its task definition's CPU and memory), what one instance of the
group registers, what the instances have left, and the instances already booting. The group grows by
the instances that hold the rest, with `step` as the floor (and the fallback when the evidence is
missing), never above `max_instances`. When no instance of the group's size could hold one task,
more of them would not help: there is nothing to propose (the policy escalates).

Works with ECS managed scaling, never against it: when the capacity provider's managed scaling is on,
ECS owns the group's desired size, so the action raises the group's maximum (the ceiling managed
scaling may grow to) to what the tasks need; when it is off, it raises the desired size itself (and
the maximum with it when needed).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, ApiCall, Change, Context, Expect, Params, Plan
from agent.arns import region_of
from agent.diagnose.fields import integer
from agent.verdict import shortfall

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from agent.model import ServiceView


class ScaleCapacityProviderParams(Params):
    step: int = Field(
        default=1, ge=1, le=100, description="the fewest instances to add per action (all of them without evidence)"
    )
    max_instances: int = Field(default=10, ge=1, le=10_000, description="never grow the group beyond this")
    warmup_seconds: int = Field(
        default=240, ge=0, le=3600, description="time new instances get to boot and take tasks before a verdict"
    )


_GROUP_FIELD = re.compile(r"^autoScalingGroups\[(.+)\]\.(DesiredCapacity|MaxSize)$")


def _field(group: str, size: str) -> str:
    return f"autoScalingGroups[{group}].{size}"


def resize(group: str, sizes: Mapping[str, int]) -> ApiCall:
    """UpdateAutoScalingGroup to `sizes`, with the read that shows them in place."""
    expect = Expect(
        "autoscaling",
        "DescribeAutoScalingGroups",
        {"AutoScalingGroupNames": [group]},
        "AutoScalingGroups[0]",
        dict(sizes),
        "subset",
    )
    return ApiCall("autoscaling", "UpdateAutoScalingGroup", {"AutoScalingGroupName": group, **sizes}, expect=expect)


def _group_name(provider: Mapping[str, Any]) -> str | None:
    arn = str((provider.get("autoScalingGroupProvider") or {}).get("autoScalingGroupArn") or "")
    return arn.split("autoScalingGroupName/", 1)[1] if "autoScalingGroupName/" in arn else None


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU units and MiB of memory: what a task needs, or what an instance registers or has left."""

    cpu: int
    memory: int

    def holds(self, need: Resources) -> int:
        """How many tasks that each need `need` fit in these resources."""
        counts = [have // wanted for have, wanted in ((self.cpu, need.cpu), (self.memory, need.memory)) if wanted > 0]
        return min(counts) if counts else 0

    def __str__(self) -> str:
        return f"{self.cpu} CPU units and {self.memory} MiB"


def task_needs(definition: Mapping[str, Any]) -> Resources | None:
    """What one task reserves on an instance: the task-level sizes, else the sum of its containers'."""
    containers = [c for c in definition.get("containerDefinitions") or [] if isinstance(c, dict)]
    cpu = integer(definition.get("cpu")) or sum(integer(c.get("cpu")) or 0 for c in containers)
    memory = integer(definition.get("memory")) or sum(
        integer(c.get("memory")) or integer(c.get("memoryReservation")) or 0 for c in containers
    )
    return Resources(cpu, memory) if cpu > 0 or memory > 0 else None


def _resources(items: object) -> Resources | None:
    """CPU and MEMORY of a container instance's `registeredResources` or `remainingResources`."""
    listed = items if isinstance(items, list) else []
    values = {str(item.get("name")): integer(item.get("integerValue")) for item in listed if isinstance(item, dict)}
    cpu, memory = values.get("CPU"), values.get("MEMORY")
    return Resources(cpu, memory) if cpu is not None and memory is not None else None


@dataclass(frozen=True, slots=True)
class Sizing:
    """What the evidence says the group needs: `add` more instances (0: nothing more would help or is
    needed), and why, in words."""

    add: int
    why: str


def size_from_evidence(service: ServiceView, group: Mapping[str, Any]) -> Sizing | None:
    """The instances the tasks that cannot be placed need; None when the evidence is missing."""
    missing = shortfall(service)
    definition = service.task_definitions.get(service.task_definition)
    need = task_needs(definition) if definition else None
    ids = {str(i.get("InstanceId")) for i in group.get("Instances") or [] if isinstance(i, dict)}
    members = [i for i in service.container_instances if str(i.get("ec2InstanceId")) in ids]
    sizes = Counter(size for m in members if (size := _resources(m.get("registeredResources"))) is not None)
    if missing <= 0 or need is None or not sizes:
        return None
    size = sizes.most_common(1)[0][0]
    per_instance = size.holds(need)
    if per_instance <= 0:
        return Sizing(0, f"a task needs {need}, more than an instance of the group registers ({size})")
    usable = [m for m in members if m.get("status") == "ACTIVE" and m.get("agentConnected", True)]
    free = sum(left.holds(need) for m in usable if (left := _resources(m.get("remainingResources"))) is not None)
    booting = max(0, (integer(group.get("DesiredCapacity")) or 0) - len(members))
    waiting = missing - free - booting * per_instance
    add = math.ceil(waiting / per_instance) if waiting > 0 else 0
    why = (
        f"{missing} task(s) cannot be placed; each needs {need}, an instance registers {size} "
        f"({per_instance} task(s)); free capacity holds {free}"
        + (f", {booting} instance(s) booting hold {booting * per_instance}" if booting else "")
        + f": {add} more instance(s)"
    )
    return Sizing(add, why)


def _providers(service: ServiceView) -> Iterable[Mapping[str, Any]]:
    """The service's capacity providers first (its strategy's, in order), then the cluster's others."""
    strategy = service.description.get("capacityProviderStrategy")
    listed = strategy if isinstance(strategy, list) else []
    named = [str(s.get("capacityProvider")) for s in listed if isinstance(s, dict)]
    return sorted(
        service.capacity_providers,
        key=lambda p: named.index(str(p.get("name"))) if p.get("name") in named else len(named),
    )


class ScaleCapacityProvider(Action[ScaleCapacityProviderParams]):
    name: ClassVar[str] = "scale_capacity_provider"
    params_model = ScaleCapacityProviderParams
    permissions: ClassVar[tuple[str, ...]] = ("autoscaling:UpdateAutoScalingGroup",)
    dry_run_description: ClassVar[str] = "would add container instances to the capacity provider's Auto Scaling group"
    judged_by: ClassVar[str] = "capacity"

    def plan(self, context: Context, params: ScaleCapacityProviderParams) -> Plan | None:
        service = context.service
        for provider in _providers(service):
            name = _group_name(provider)
            group = service.auto_scaling_groups.get(name or "")
            if not name or not group:
                continue
            managed = ((provider.get("autoScalingGroupProvider") or {}).get("managedScaling") or {}).get("status")
            current_max, current_desired = int(group.get("MaxSize", 0)), int(group.get("DesiredCapacity", 0))
            sizing = size_from_evidence(service, group)
            if sizing is None:
                # Without evidence, one step beyond the size managed scaling may reach, or the group has.
                wanted = (current_max if managed == "ENABLED" else current_desired) + params.step
                why = f"no evidence of what the tasks need: {params.step} instance(s), the policy's step"
            elif sizing.add <= 0:
                return None  # the capacity is there or on its way, or more of these instances would not help
            else:
                wanted = current_desired + max(sizing.add, params.step)
                why = sizing.why + (
                    f", raised to the policy's step of {params.step}" if params.step > sizing.add else ""
                )
            if wanted > params.max_instances:
                why += f"; capped at max_instances ({params.max_instances})"
            wanted = min(wanted, params.max_instances)
            return self._resize(
                context, params, name=name, managed=managed == "ENABLED", group=group, wanted=wanted, why=why
            )
        return None

    def _resize(
        self,
        context: Context,
        params: ScaleCapacityProviderParams,
        *,
        name: str,
        managed: bool,
        group: Mapping[str, Any],
        wanted: int,
        why: str,
    ) -> Plan | None:
        """The one change that gives the group `wanted` instances (managed scaling: room for them)."""
        current_max, current_desired = int(group.get("MaxSize", 0)), int(group.get("DesiredCapacity", 0))
        if managed:
            # ECS owns the desired size; the maximum is the one thing managed scaling cannot raise itself.
            if wanted <= current_max:
                return None
            changes: tuple[Change, ...] = (Change(_field(name, "MaxSize"), current_max, wanted),)
            sizes = {"MaxSize": wanted}
            how = f"raise {name}'s maximum from {current_max} to {wanted} (managed scaling adds the instances)"
        else:
            if wanted <= current_desired:
                return None
            sizes = {"DesiredCapacity": wanted, **({"MaxSize": wanted} if wanted > current_max else {})}
            changes = (Change(_field(name, "DesiredCapacity"), current_desired, wanted),) + (
                (Change(_field(name, "MaxSize"), current_max, wanted),) if wanted > current_max else ()
            )
            how = f"scale {name} from {current_desired} to {wanted} instances"
        return Plan(
            action=self.name,
            summary=how,
            changes=changes,
            calls=(resize(name, sizes),),
            region=context.region,
            decided_by=why,
            quiet_seconds=params.warmup_seconds,
        )

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        del outputs
        undo = [c for c in changes if _GROUP_FIELD.match(c.field)]
        groups = {m.group(1) for c in undo if (m := _GROUP_FIELD.match(c.field))}
        if len(groups) != 1:
            return None
        [name] = groups
        sizes = {c.field.rsplit(".", 1)[1]: int(c.current) for c in undo}
        return Plan(
            action=self.name,
            summary=f"put {name} back to " + ", ".join(f"{key} {value}" for key, value in sizes.items()),
            changes=tuple(Change(c.field, c.desired, c.current) for c in undo),
            calls=(resize(name, sizes),),
            region=region_of(service.arn),
        )
