"""What every remediation is: a name, a params schema, the IAM permissions it needs, and a pure plan.

A plan is data: the API calls that make the change, each with the read that tells whether it already
happened. The executor (`agent.act`) runs those calls; the `aws` commands people read are rendered
from the same calls (`agent.awscli.render`), so what is shown and what is done cannot drift apart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from agent.awscli import render

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from agent.model import Finding, RiskFinding, ServiceView
    from agent.state import ServiceState


class AwsApi(Protocol):
    """The calls an action may make; implemented by `agent.aws` (which enforces dry-run)."""

    def call(
        self,
        api: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        guard: Callable[[], None] | None = None,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """Call `operation` (e.g. "UpdateService") of AWS `api` (e.g. "ecs") and return its response.
        `guard` runs before every attempt of a write; `idempotent` writes may be retried blindly."""
        ...


class Params(BaseModel):
    """Base for action parameters: unknown keys are errors, so a typo in a policy is caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Ref:
    """A value learnt while the plan runs: the output `name` of an earlier call."""

    name: str


@dataclass(frozen=True, slots=True)
class Expect:
    """How to tell that a call already took effect: read, then compare the value at `path`.

    `path` is dotted with list indexes (`services[0].taskDefinition`). `match` is `equal`, `arn`
    (an ARN equals a `family:revision` or another ARN of the same revision) or `subset` (every key
    of the expected mapping has that value).
    """

    api: str
    operation: str
    params: Mapping[str, Any]
    path: str
    value: Any
    match: str = "equal"


@dataclass(frozen=True, slots=True)
class Derived:
    """Parameters that are a copy of something read, with a few fields changed: the printed command
    reads it and applies the changes with `jq`, so nothing but the change is shown (a task definition's
    environment stays where it is).

    `keep` are the top-level fields copied; `set_fields` top-level values to set; `set_items` values
    to set in the list items whose `key` field has a given value: `(list, key, key value, field, value)`.
    """

    read: ApiCall
    query: str
    keep: tuple[str, ...]
    set_fields: Mapping[str, Any] = field(default_factory=dict)
    set_items: tuple[tuple[str, str, str, str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One AWS call of a plan. `params` may hold `Ref`s to earlier outputs; `outputs` names values of
    the response (`name -> path`) for later calls; `expect` tells whether it already happened; a call
    with `tag_change=True` carries the change's token as a resource tag, so it can be found again."""

    api: str
    operation: str
    params: Mapping[str, Any]
    outputs: Mapping[str, str] = field(default_factory=dict)
    expect: Expect | None = None
    tag_change: bool = False
    derived: Derived | None = None


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
    """A remediation ready to apply: the difference in words, and the calls that make it.

    `decided_by` names the evidence that sized the change (shown to people). `advice` holds the
    commands of a plan that changes nothing (`notify`): a person runs them. `quiet_seconds` is how
    long after the change new failures are still expected (instances booting) and do not count
    against it.
    """

    action: str
    summary: str
    changes: tuple[Change, ...]
    calls: tuple[ApiCall, ...] = ()
    region: str | None = None
    decided_by: str = ""
    advice: tuple[str, ...] = ()
    quiet_seconds: float = 0.0

    @property
    def mutates(self) -> bool:
        return bool(self.calls)

    @property
    def commands(self) -> tuple[str, ...]:
        """The `aws` commands that do what the calls do (or, for advice, what a person should run)."""
        return render(self.calls, region=self.region) if self.calls else self.advice


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a plan may depend on: the service as observed, why we act, what we did before.

    `findings` are the evidence that made the policy apply, newest first; after an earlier change they
    come only from tasks started after it. `since` is the time of the last change (None: none yet).
    """

    service: ServiceView
    findings: Sequence[Finding]
    risks: Sequence[RiskFinding]
    state: ServiceState
    region: str | None = None
    since: datetime | None = None


P = TypeVar("P", bound=Params)


class Action(ABC, Generic[P]):
    """A remediation registered by name. Subclasses are stateless; `plan` and `revert` are pure."""

    name: ClassVar[str]
    params_model: type[P]
    permissions: ClassVar[tuple[str, ...]]
    dry_run_description: ClassVar[str]
    # Undo a change of this action judged not effective, unless the policy says otherwise.
    revert_by_default: ClassVar[bool] = False
    # How a change is judged (`agent.verdict.judge`): by new failures of the same cause; by tasks that
    # still cannot be placed ("capacity"); or only by steady state and the deadline ("rollout").
    judged_by: ClassVar[str] = "failures"

    @abstractmethod
    def plan(self, context: Context, params: P) -> Plan | None:
        """The change to make, or None when the service is already as it should be."""

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        """The plan that undoes an applied change (`changes` as planned, `outputs` as learnt while
        applying), or None when this action cannot be undone safely."""
        del service, changes, outputs
        return None

    def supersede(self, plan: Plan, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        """The next change `plan` (of any action), made to also clean up after a change of this action
        that did not help (`changes` as planned then, `outputs` as learnt), when `plan` replaces it
        anyway; None when it does not (then this action's change is undone first)."""
        del plan, changes, outputs
        return None

    def state_after(self, changes: Sequence[Change], state: ServiceState) -> ServiceState:
        """What applying these changes teaches the agent (most actions: nothing)."""
        del changes
        return state


def update_service(service: ServiceView, **fields: Any) -> ApiCall:  # noqa: ANN401 - API field values
    """UpdateService of `fields`, with the read that shows each of them in place."""
    params = {"cluster": service.cluster, "service": service.name, **fields}
    [(name, value)] = fields.items()
    match = "arn" if name == "taskDefinition" else "subset" if isinstance(value, dict) else "equal"
    expect = Expect(
        "ecs",
        "DescribeServices",
        {"cluster": service.cluster, "services": [service.name]},
        f"services[0].{name}",
        value,
        match,
    )
    return ApiCall("ecs", "UpdateService", params, expect=expect)
