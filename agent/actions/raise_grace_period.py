"""raise_grace_period: give slow starters time before the load balancer's verdict counts.

ECS kills a task that fails ELB health checks once the grace period is over, so a task that needs
longer to start than grace + interval x unhealthy threshold is killed in a loop. Every signal of how
long a start takes proposes a grace period, and the longest wins (rounded up to 10 s, within
`min_seconds`..`max_seconds`); the proposal names the one that decided:

- the tasks' lifetime: they lived that long without passing, so at least `factor` (2 or more) times it;
- the time ECS gave them: it stops an unhealthy task only once the grace period and `unhealthy
  threshold` failed checks `interval` apart are over, so tasks it stopped needed longer than that, at
  least `factor` times it (the reading there is before a stopped task shows its lifetime: ECS reports
  the unhealthy target the moment it acts, and the task stops a drain later);
- the load balancer: after the app answers, a target needs `healthy threshold` passing checks
  `interval` apart, so at least the lifetime (or the time given) plus that;
- the container health check's `startPeriod`: the owners' own word on how long a start takes, plus
  the load balancer's passing checks;
- the last good revision: the time its deployment took to complete (launch to healthy), times `factor`.

After a change only tasks started after it count (the decision's `Context`), so a second attempt is
sized from the longer lifetime they now show.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from agent.actions.base import Action, Change, Context, Params, Plan, update_service
from agent.arns import as_datetime, region_of
from agent.diagnose.fields import integer
from agent.model import Cause

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from agent.model import ServiceView

_COMPLETED = re.compile(r"\(deployment (?P<id>[^)]+)\) deployment completed\.")


class RaiseGracePeriodParams(Params):
    factor: float = Field(default=2.0, ge=1.0, description="multiple of the observed startup")
    min_seconds: int = Field(default=60, ge=0, le=2_147_483_647)
    max_seconds: int = Field(default=600, ge=1, le=2_147_483_647)

    @model_validator(mode="after")
    def _ordered(self) -> RaiseGracePeriodParams:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) is above max_seconds ({self.max_seconds})")
        return self


@dataclass(frozen=True, slots=True)
class Signal:
    """One reading of how long a start takes, as the grace period it asks for (`label` names it)."""

    seconds: float
    label: str
    why: str


@dataclass(frozen=True, slots=True)
class Checks:
    """A target group's health checks, in seconds and counts (ELBv2's defaults when a field is missing)."""

    interval: int
    healthy: int
    unhealthy: int

    @property
    def to_healthy(self) -> int:
        """The longest a target that starts answering takes to turn healthy."""
        return self.interval * self.healthy

    @property
    def to_unhealthy(self) -> int:
        """How long a target that never answers takes to turn unhealthy."""
        return self.interval * self.unhealthy

    def __str__(self) -> str:
        return f"{self.healthy} passing checks {self.interval} s apart"


def _checks(service: ServiceView) -> Checks | None:
    """The health checks of the service's target groups: the slowest to turn a target healthy."""
    found = [
        Checks(
            integer(group.get("HealthCheckIntervalSeconds")) or 30,
            integer(group.get("HealthyThresholdCount")) or 5,
            integer(group.get("UnhealthyThresholdCount")) or 2,
        )
        for balancer in service.description.get("loadBalancers") or []
        if (group := service.target_groups.get(str(balancer.get("targetGroupArn"))))
    ]
    return max(found, key=lambda c: c.to_healthy) if found else None


def _start_period(service: ServiceView) -> int | None:
    """The longest `startPeriod` of the container health checks of the revision the service runs."""
    definition = service.task_definitions.get(service.task_definition) or {}
    periods = [
        integer((c.get("healthCheck") or {}).get("startPeriod")) or 0
        for c in definition.get("containerDefinitions") or []
        if isinstance(c, dict)
    ]
    return max(periods, default=0) or None


def last_good_start(service: ServiceView) -> tuple[str, float] | None:
    """(revision, seconds) the last deployment that completed took from its creation to completing, when
    ECS still shows both (the deployment, and the service event saying it completed)."""
    completed = {
        match["id"]: when
        for event in service.description.get("events") or []
        if isinstance(event, dict)
        and (match := _COMPLETED.search(str(event.get("message") or "")))
        and (when := as_datetime(event.get("createdAt")))
    }
    for deployment in service.deployments:
        created = as_datetime(deployment.get("createdAt"))
        done = completed.get(str(deployment.get("id")))
        if deployment.get("rolloutState") == "COMPLETED" and deployment.get("status") != "PRIMARY" and created and done:
            revision = str(deployment.get("taskDefinition") or "").rsplit("/", 1)[-1]
            return revision, (done - created).total_seconds()
    return None


def signals(context: Context, factor: float) -> Iterator[Signal]:
    """Every reading of how long a start takes, each as the grace period it asks for."""
    service = context.service
    failed = [f for f in context.findings if f.cause is Cause.HEALTH_CHECK_ELB]
    lifetimes = [f.subject.run_seconds for f in failed if f.subject.run_seconds]
    lived = max(lifetimes) if lifetimes else None
    checks = _checks(service)
    then = f" + {checks} ({checks.to_healthy} s)" if checks else ""
    if lived:
        yield Signal(lived * factor, "lifetime", f"the tasks lived {lived:.0f} s without passing, x {factor:g}")
        if checks:
            yield Signal(lived + checks.to_healthy, "lifetime + checks", f"the tasks lived {lived:.0f} s{then}")
    grace = integer(service.description.get("healthCheckGracePeriodSeconds")) or 0
    given = max(grace, checks.to_unhealthy if checks else 0)
    if failed and given:
        told = f"ECS stopped them after {given} s (grace period {grace} s" + (
            f", {checks.unhealthy} failed checks {checks.interval} s apart)" if checks else ")"
        )
        yield Signal(given * factor, "time given", f"{told}, x {factor:g}")
        if checks:
            yield Signal(given + checks.to_healthy, "time given + checks", f"{told}{then}")
    start_period = _start_period(service)
    if start_period:
        yield Signal(
            start_period + (checks.to_healthy if checks else 0),
            "startPeriod",
            f"the container health check's startPeriod is {start_period} s{then}",
        )
    good = last_good_start(service)
    if good:
        revision, took = good
        yield Signal(
            took * factor, "last good revision", f"{revision} took {took:.0f} s to become healthy, x {factor:g}"
        )


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
        factor = max(2.0, params.factor)
        weighed = sorted(signals(context, factor), key=lambda s: s.seconds, reverse=True)
        if weighed:
            decided, others = weighed[0], weighed[1:]
            wanted = decided.seconds
            why = f"{decided.label}: {decided.why} = {decided.seconds:.0f} s"
            if others:
                why += "; also weighed: " + ", ".join(f"{s.label} {s.seconds:.0f} s" for s in others)
        else:
            wanted = max(current, 1) * params.factor
            why = f"no reading of how long a start takes: {params.factor:g} x the current {current} s"
        desired = min(max(math.ceil(wanted / 10) * 10, params.min_seconds), params.max_seconds)
        if desired <= current:
            return None
        if wanted > params.max_seconds:
            why += f"; capped at max_seconds ({params.max_seconds})"
        return Plan(
            action=self.name,
            summary=f"raise the health-check grace period from {current} s to {desired} s",
            changes=(Change("healthCheckGracePeriodSeconds", current, desired),),
            calls=(update_service(service, healthCheckGracePeriodSeconds=desired),),
            region=context.region,
            decided_by=why,
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
