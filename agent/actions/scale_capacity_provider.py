"""scale_capacity_provider: add container instances when tasks cannot be placed for CPU or memory.

Works with ECS managed scaling, never against it: when the capacity provider's managed scaling is on,
ECS owns the group's desired size, so the action raises the group's maximum (the ceiling managed
scaling may grow to); when it is off, the action raises the desired size itself. Either way by
`step` instances, never above `max_instances`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, AwsApi, Change, Context, Params, Plan
from agent.awscli import command, quote


class ScaleCapacityProviderParams(Params):
    step: int = Field(default=1, ge=1, le=100, description="instances to add per action")
    max_instances: int = Field(default=10, ge=1, le=10_000, description="never grow the group beyond this")


def _group_name(provider: dict[str, Any]) -> str | None:
    arn = str((provider.get("autoScalingGroupProvider") or {}).get("autoScalingGroupArn") or "")
    return arn.split("autoScalingGroupName/", 1)[1] if "autoScalingGroupName/" in arn else None


class ScaleCapacityProvider(Action[ScaleCapacityProviderParams]):
    name: ClassVar[str] = "scale_capacity_provider"
    params_model = ScaleCapacityProviderParams
    permissions: ClassVar[tuple[str, ...]] = ("autoscaling:UpdateAutoScalingGroup",)
    dry_run_description: ClassVar[str] = "would add container instances to the capacity provider's Auto Scaling group"

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
                changes: tuple[Change, ...] = (Change("AutoScalingGroup.MaxSize", current_max, desired_max),)
                sizes = {"MaxSize": desired_max}
                how = f"raise {name}'s maximum from {current_max} to {desired_max} (managed scaling adds the instances)"
            else:
                desired = min(current_desired + params.step, params.max_instances)
                if desired <= current_desired:
                    return None
                sizes = {"DesiredCapacity": desired, **({"MaxSize": desired} if desired > current_max else {})}
                changes = (Change("AutoScalingGroup.DesiredCapacity", current_desired, desired),) + (
                    (Change("AutoScalingGroup.MaxSize", current_max, desired),) if desired > current_max else ()
                )
                how = f"scale {name} from {current_desired} to {desired} instances"
            flags = " ".join(
                f"--{'max-size' if key == 'MaxSize' else 'desired-capacity'} {value}" for key, value in sizes.items()
            )
            return Plan(
                action=self.name,
                summary=how,
                changes=changes,
                commands=(
                    command(
                        "autoscaling update-auto-scaling-group",
                        f"--auto-scaling-group-name {quote(name)}",
                        flags,
                        region=context.region,
                    ),
                ),
                request={"AutoScalingGroupName": name, **sizes},
            )
        return None

    def apply(self, plan: Plan, aws: AwsApi) -> None:
        aws.call("autoscaling", "UpdateAutoScalingGroup", plan.request)
