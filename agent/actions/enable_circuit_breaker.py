"""enable_circuit_breaker: let ECS stop a failing deployment and roll back by itself.

Configures the control loop ECS already runs instead of racing it: once enabled, a deployment whose
failed tasks reach ECS's threshold is marked FAILED and, with rollback, replaced by the last
deployment that reached steady state. The rest of the deployment configuration is kept as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, Change, Context, Params, Plan, update_service
from agent.arns import region_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.model import ServiceView


class EnableCircuitBreakerParams(Params):
    rollback: bool = Field(default=True, description="also roll back to the last deployment that completed")


class EnableCircuitBreaker(Action[EnableCircuitBreakerParams]):
    name: ClassVar[str] = "enable_circuit_breaker"
    params_model = EnableCircuitBreakerParams
    permissions: ClassVar[tuple[str, ...]] = ("ecs:UpdateService",)
    dry_run_description: ClassVar[str] = "would turn on the deployment circuit breaker (with rollback)"
    judged_by: ClassVar[str] = "rollout"

    def plan(self, context: Context, params: EnableCircuitBreakerParams) -> Plan | None:
        service = context.service
        controller = service.description.get("deploymentController")
        if isinstance(controller, dict) and controller.get("type") not in (None, "ECS"):
            return None  # the breaker only exists for the rolling-update controller
        configuration: dict[str, Any] = dict(service.description.get("deploymentConfiguration") or {})
        current = dict(configuration.get("deploymentCircuitBreaker") or {"enable": False, "rollback": False})
        if current.get("enable") and (current.get("rollback") or not params.rollback):
            return None
        desired = {**current, "enable": True, "rollback": params.rollback}
        configuration["deploymentCircuitBreaker"] = desired
        return Plan(
            action=self.name,
            summary="turn on the deployment circuit breaker" + (" with rollback" if params.rollback else ""),
            changes=(Change("deploymentConfiguration.deploymentCircuitBreaker", current, desired),),
            calls=(update_service(service, deploymentConfiguration=configuration),),
            region=context.region,
        )

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        del outputs
        [change] = changes
        configuration = dict(service.description.get("deploymentConfiguration") or {})
        configuration["deploymentCircuitBreaker"] = change.current
        return Plan(
            action=self.name,
            summary="put the deployment circuit breaker back as it was",
            changes=(Change(change.field, change.desired, change.current),),
            calls=(update_service(service, deploymentConfiguration=configuration),),
            region=region_of(service.arn),
        )
