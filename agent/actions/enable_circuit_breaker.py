"""enable_circuit_breaker: let ECS stop a failing deployment and roll back by itself.

Configures the control loop ECS already runs instead of racing it: once enabled, a deployment whose
failed tasks reach ECS's threshold is marked FAILED and, with rollback, replaced by the last
deployment that reached steady state. The rest of the deployment configuration is kept as it is.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, AwsApi, Change, Context, Params, Plan
from agent.awscli import command, json_argument, quote


class EnableCircuitBreakerParams(Params):
    rollback: bool = Field(default=True, description="also roll back to the last deployment that completed")


class EnableCircuitBreaker(Action[EnableCircuitBreakerParams]):
    name: ClassVar[str] = "enable_circuit_breaker"
    params_model = EnableCircuitBreakerParams
    permissions: ClassVar[tuple[str, ...]] = ("ecs:UpdateService",)
    dry_run_description: ClassVar[str] = "would turn on the deployment circuit breaker (with rollback)"

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
            commands=(
                command(
                    "ecs update-service",
                    f"--cluster {quote(service.cluster)} --service {quote(service.name)}",
                    f"--deployment-configuration {json_argument(configuration)}",
                    region=context.region,
                ),
            ),
            request={"cluster": service.cluster, "service": service.name, "deploymentConfiguration": configuration},
        )

    def apply(self, plan: Plan, aws: AwsApi) -> None:
        aws.call("ecs", "UpdateService", plan.request)
