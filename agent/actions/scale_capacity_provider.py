"""scale_capacity_provider: add container instances when tasks cannot be placed for CPU or memory.

Works with ECS managed scaling, never against it: when the capacity provider's managed scaling is on,
ECS owns the group's desired size, so the action raises the group's maximum (the ceiling managed
scaling may grow to); when it is off, the action raises the desired size itself. Either way by
`step` instances, never above `max_instances`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, ApiCall, Change, Context, Expect, Params, Plan
from agent.arns import region_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.model import ServiceView


class ScaleCapacityProviderParams(Params):
    step: int = Field(default=1, ge=1, le=100, description="instances to add per action")
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


def _group_name(provider: dict[str, Any]) -> str | None:
    arn = str((provider.get("autoScalingGroupProvider") or {}).get("autoScalingGroupArn") or "")
    return arn.split("autoScalingGroupName/", 1)[1] if "autoScalingGroupName/" in arn else None


class ScaleCapacityProvider(Action[ScaleCapacityProviderParams]):
    name: ClassVar[str] = "scale_capacity_provider"
    params_model = ScaleCapacityProviderParams
    permissions: ClassVar[tuple[str, ...]] = ("autoscaling:UpdateAutoScalingGroup",)
    dry_run_description: ClassVar[str] = "would add container instances to the capacity provider's Auto Scaling group"
    judged_by: ClassVar[str] = "capacity"

    def plan(self, context: Context, params: ScaleCapacityProviderParams) -> Plan | None:
        service = context.service
        for provider in service.capacity_providers:
            name = _group_name(dict(provider))
            group = service.auto_scaling_groups.get(name or "")
            if not name or not group:
                continue
            managed = ((provider.get("autoScalingGroupProvider") or {}).get("managedScaling") or {}).get("status")
            current_max, current_desired = int(group.get("MaxSize", 0)), int(group.get("DesiredCapacity", 0))
            if managed == "ENABLED":
                desired_max = min(current_max + params.step, params.max_instances)
                if desired_max <= current_max:
                    return None
                changes: tuple[Change, ...] = (Change(_field(name, "MaxSize"), current_max, desired_max),)
                sizes = {"MaxSize": desired_max}
                how = f"raise {name}'s maximum from {current_max} to {desired_max} (managed scaling adds the instances)"
            else:
                desired = min(current_desired + params.step, params.max_instances)
                if desired <= current_desired:
                    return None
                sizes = {"DesiredCapacity": desired, **({"MaxSize": desired} if desired > current_max else {})}
                changes = (Change(_field(name, "DesiredCapacity"), current_desired, desired),) + (
                    (Change(_field(name, "MaxSize"), current_max, desired),) if desired > current_max else ()
                )
                how = f"scale {name} from {current_desired} to {desired} instances"
            return Plan(
                action=self.name,
                summary=how,
                changes=changes,
                calls=(resize(name, sizes),),
                region=context.region,
                quiet_seconds=params.warmup_seconds,
            )
        return None

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
