"""What every remediation is: a name, a params schema, the IAM permissions it needs, a pure plan
(current -> desired, and the `aws` command that does the same), and an apply that sends only the
difference through the one layer that talks to AWS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.model import Finding, RiskFinding, ServiceView
    from agent.state import ServiceState


class AwsApi(Protocol):
    """The calls an action may make; implemented by `agent.aws` (which enforces dry-run)."""

    def call(self, api: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call `operation` (e.g. "UpdateService") of AWS `api` (e.g. "ecs") and return its response."""
        ...


class Params(BaseModel):
    """Base for action parameters: unknown keys are errors, so a typo in a policy is caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Change:
    """One field the action changes: what it is now, what it will be."""

    field: str
    current: Any
    desired: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "current": self.current, "desired": self.desired}


@dataclass(frozen=True, slots=True)
class Plan:
    """A remediation ready to apply: the difference, in words and as `aws` commands."""

    action: str
    summary: str
    changes: tuple[Change, ...]
    commands: tuple[str, ...]
    # The request apply sends (names resolved while planning); never shown to users.
    request: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mutates(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a plan may depend on: the service as observed, why we act, what we did before."""

    service: ServiceView
    findings: Sequence[Finding]  # the findings that matched the policy, newest first
    risks: Sequence[RiskFinding]
    state: ServiceState
    region: str | None = None


P = TypeVar("P", bound=Params)


class Action(ABC, Generic[P]):
    """A remediation registered by name. Subclasses are stateless; `plan` is pure."""

    name: ClassVar[str]
    params_model: type[P]
    permissions: ClassVar[tuple[str, ...]]
    dry_run_description: ClassVar[str]

    @abstractmethod
    def plan(self, context: Context, params: P) -> Plan | None:
        """The change to make, or None when the service is already as it should be."""

    @abstractmethod
    def apply(self, plan: Plan, aws: AwsApi) -> None:
        """Send exactly the plan's difference."""

    def state_after(self, plan: Plan, state: ServiceState) -> ServiceState:
        """What applying the plan teaches the agent (most actions: nothing)."""
        del plan
        return state
