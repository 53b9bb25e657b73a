"""The policy language: Kubernetes-style YAML documents, checked field by field.

```yaml
apiVersion: ecs-medic/v1
kind: RemediationPolicy
metadata: {name: raise-grace-period-on-elb-cycling}
spec:
  selector: {clusters: ["*"], services: ["*"], tags: {}}
  when: {cause: health_check_elb, occurrences: 3, within: 15m}
  remediation: {action: raise_grace_period, params: {factor: 2, min_seconds: 60, max_seconds: 600}}
  approval: auto
  cooldown: 30m
  maxAttempts: 3
  priority: 0
  notify: [sns, webhook]        # optional: where this policy's notifications go (default: every channel)
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from agent.actions import REGISTRY
from agent.model import Cause, Risk
from agent.notify.events import POLICY_CHANNELS
from agent.policy.duration import format_duration, parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]  # finite, at most 365d


def _registered_action(value: str) -> str:
    if value not in REGISTRY:
        raise ValueError(f"unknown action {value!r}; valid actions: {', '.join(sorted(REGISTRY))}")
    return value


ActionName = Annotated[str, AfterValidator(_registered_action)]
# ECS keeps stopped tasks about an hour and a service's last 100 events: a longer window finds nothing more.
MAX_WINDOW_SECONDS = 7 * 86400.0
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    """Unknown fields are errors: a typo must never silently widen or disable a policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Selector(_Strict):
    """Which services a policy applies to: globs on cluster and service names; every tag must match."""

    clusters: tuple[str, ...] = ("*",)
    services: tuple[str, ...] = ("*",)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("clusters", "services", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value  # `services: "*"` means `services: ["*"]`


class When(_Strict):
    """What must be true of a service for the policy to act."""

    cause: tuple[Cause, ...] = Field(default=(), description="diagnosed causes, any of them")
    risk: Risk | None = Field(default=None, description="a prevention finding instead of a failure")
    occurrences: int = Field(default=1, ge=1, description="at least this many matching findings...")
    within: Duration = Field(default=900.0, gt=0, description="...inside this window (at most 7d)")
    after_deploy: bool | None = Field(
        default=None,
        alias="afterDeploy",
        description="true: the failing revision is newer than the last good one (the failure came with a deploy)",
    )
    deployment: Literal["failing", "failed"] | None = Field(
        default=None, description="failing: the PRIMARY rollout is IN_PROGRESS with failed tasks; failed: FAILED"
    )
    circuit_breaker: Literal["enabled", "disabled"] | None = Field(default=None, alias="circuitBreaker")
    launch_type: Literal["EC2", "FARGATE"] | None = Field(default=None, alias="launchType")

    @field_validator("cause", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("within")
    @classmethod
    def _window(cls, value: float) -> float:
        if value > MAX_WINDOW_SECONDS:
            raise ValueError(f"{format_duration(value)} is longer than 7d, the longest window accepted")
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> When:
        if not self.cause and self.risk is None and self.deployment is None:
            raise ValueError("needs at least one of `cause`, `risk` or `deployment`")
        if self.risk is not None and (self.cause or self.deployment):
            raise ValueError("`risk` (prevention) cannot be combined with `cause` or `deployment` (failures)")
        return self


class Remediation(_Strict):
    action: ActionName
    params: dict[str, Any] = Field(default_factory=dict)

    # `params` are checked against the action's own schema by the loader, so that an error can name
    # spec.remediation.params.<field> and list that action's fields.


class Verify(_Strict):
    """How a change is judged by what ECS reports after it."""

    failures: int = Field(
        default=1, ge=1, le=100, description="not effective once this many tasks started after it fail the same way"
    )
    settle: Duration = Field(default=60.0, ge=0, description="effective once at steady state this long after it")
    timeout: Duration | None = Field(
        default=None, gt=0, description="not effective if not at steady state by then (default: the agent setting)"
    )


class EscalationStep(_Strict):
    """What to try once the policy's own remediation has used its attempts (medik8s-style ladder)."""

    action: ActionName
    params: dict[str, Any] = Field(default_factory=dict)
    attempts: int = Field(default=1, ge=1, le=10, description="changes this step may make")
    timeout: Duration | None = Field(default=None, gt=0, description="how long each change of this step is watched")
    revert_on_failure: bool | None = Field(default=None, alias="revertOnFailure")


class Spec(_Strict):
    selector: Selector = Field(default_factory=Selector)
    when: When
    remediation: Remediation
    approval: Literal["auto", "manual"] = "auto"
    cooldown: Duration = Field(default=1800.0, ge=0)
    max_attempts: int = Field(default=3, ge=1, le=100, alias="maxAttempts")
    priority: int = Field(default=0, description="higher first, when several policies match one service")
    verify: Verify = Field(default_factory=Verify)
    revert_on_failure: bool | None = Field(
        default=None, alias="revertOnFailure", description="undo a change judged not effective (default: the action's)"
    )
    escalation: tuple[EscalationStep, ...] = Field(default=(), max_length=10)
    notify: tuple[str, ...] = Field(
        default=(), description="the channels for this policy's notifications; empty: every configured channel"
    )

    @field_validator("notify", mode="before")
    @classmethod
    def _channel_names(cls, value: object) -> object:
        names = (value,) if isinstance(value, str) else value
        if isinstance(names, list | tuple):
            unknown = [name for name in names if name not in POLICY_CHANNELS]
            if unknown:
                raise ValueError(f"unknown channel {unknown[0]!r}; valid channels: {', '.join(POLICY_CHANNELS)}")
        return names


class Metadata(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class Policy(_Strict):
    api_version: Literal["ecs-medic/v1"] = Field(alias="apiVersion")
    kind: Literal["RemediationPolicy"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name
