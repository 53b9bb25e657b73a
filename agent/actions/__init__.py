"""ACT: the remediations, registered by name. Each declares its params schema, the IAM permissions
it needs and what it would do in dry-run; each plans purely and applies only the difference."""

from __future__ import annotations

from typing import Any

from agent.actions.base import Action, ApiCall, AwsApi, Change, Context, Expect, Params, Plan, Ref
from agent.actions.enable_circuit_breaker import EnableCircuitBreaker
from agent.actions.notify import Notify
from agent.actions.raise_grace_period import RaiseGracePeriod
from agent.actions.raise_memory import RaiseMemory
from agent.actions.rollback_task_definition import RollbackTaskDefinition
from agent.actions.scale_capacity_provider import ScaleCapacityProvider

__all__ = ["REGISTRY", "Action", "ApiCall", "AwsApi", "Change", "Context", "Expect", "Params", "Plan", "Ref"]

REGISTRY: dict[str, Action[Any]] = {
    action.name: action
    for action in (
        RaiseGracePeriod(),
        EnableCircuitBreaker(),
        RollbackTaskDefinition(),
        ScaleCapacityProvider(),
        RaiseMemory(),
        Notify(),
    )
}
