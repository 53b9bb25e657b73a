"""raise_grace_period: give slow starters time before the load balancer's verdict counts.

ECS kills a task that fails ELB health checks once the grace period is over, so a task that needs
longer to start than grace + interval x unhealthy threshold is killed in a loop. The tasks' lifetime
is a lower bound of the startup time: the new grace period is that lifetime times `factor`
(at least 2), rounded up to 10 s, within `min_seconds`..`max_seconds`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from agent.actions.base import Action, Change, Context, Params, Plan, update_service
from agent.arns import region_of
from agent.diagnose.fields import integer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.model import ServiceView


class RaiseGracePeriodParams(Params):
    factor: float = Field(default=2.0, ge=1.0, description="multiple of the observed startup")
    min_seconds: int = Field(default=60, ge=0, le=2_147_483_647)
    max_seconds: int = Field(default=600, ge=1, le=2_147_483_647)

    @model_validator(mode="after")
    def _ordered(self) -> RaiseGracePeriodParams:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) is above max_seconds ({self.max_seconds})")
        return self


class RaiseGracePeriod(Action[RaiseGracePeriodParams]):
    name: ClassVar[str] = "raise_grace_period"
    params_model = RaiseGracePeriodParams
    permissions: ClassVar[tuple[str, ...]] = ("ecs:UpdateService",)
    dry_run_description: ClassVar[str] = "would raise the service's health-check grace period"

    def plan(self, context: Context, params: RaiseGracePeriodParams) -> Plan | None:
        service = context.service
        if not service.description.get("loadBalancers"):
            return None  # ECS uses the grace period only for load-balanced services
        current = integer(service.description.get("healthCheckGracePeriodSeconds")) or 0
        lifetimes = [f.subject.run_seconds for f in context.findings if f.subject.run_seconds]
        observed = max(lifetimes) if lifetimes else None
        wanted = observed * max(2.0, params.factor) if observed else max(current, 1) * params.factor
        desired = min(max(math.ceil(wanted / 10) * 10, params.min_seconds), params.max_seconds)
        if desired <= current:
            return None
        evidence = f" (tasks lived {observed:.0f} s before the load balancer's verdict)" if observed else ""
        return Plan(
            action=self.name,
            summary=f"raise the health-check grace period from {current} s to {desired} s{evidence}",
            changes=(Change("healthCheckGracePeriodSeconds", current, desired),),
            calls=(update_service(service, healthCheckGracePeriodSeconds=desired),),
            region=context.region,
        )

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        del outputs
        [change] = changes
        return Plan(
            action=self.name,
            summary=f"put the health-check grace period back to {change.current} s",
            changes=(Change(change.field, change.desired, change.current),),
            calls=(update_service(service, healthCheckGracePeriodSeconds=change.current),),
            region=region_of(service.arn),
        )
