"""DIAGNOSE deployments: one finding for each failed, rolled-back or failing rollout.

A deployment FAILS only when the circuit breaker (or an alarm) stops it; with the breaker off, a
broken deployment stays IN_PROGRESS forever while failedTasks climbs. Both matter: the first says
the breaker worked, the second that nothing will stop the loop.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from agent.arns import as_datetime, family_revision
from agent.diagnose.fields import integer, text
from agent.model import Cause, Finding, SourceKind, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping

_ROLLING_BACK = re.compile(r"rolling back to (?:deploymentid |deployment )?(?P<target>ecs-svc/\S+?)\.?$", re.IGNORECASE)


def circuit_breaker(service: Mapping[str, Any]) -> tuple[bool, bool]:
    """(enabled, rollback) of the service's deployment circuit breaker."""
    configuration = service.get("deploymentConfiguration")
    breaker = configuration.get("deploymentCircuitBreaker") if isinstance(configuration, dict) else None
    if not isinstance(breaker, dict):
        return False, False
    return bool(breaker.get("enable")), bool(breaker.get("rollback"))


def diagnose_deployments(
    service: Mapping[str, Any],
    base: Subject,
    *,
    task_causes: Mapping[str, Cause] | None = None,
    fallback_cause: Cause | None = None,
) -> list[Finding]:
    """Findings for the service's failed, rolled-back or failing deployments.

    `base` is what is known of the service. `task_causes` maps a deployment id to the most common
    cause among its stopped tasks; a failing deployment whose own tasks are not at hand takes
    `fallback_cause` (the service's), if any.
    """
    deployments = service.get("deployments")
    valid = [
        d
        for d in (deployments if isinstance(deployments, list) else [])
        if isinstance(d, dict) and isinstance(d.get("id"), str)
    ]
    breaker_on, rollback_on = circuit_breaker(service)
    failed_ids = {d["id"] for d in valid if d.get("rolloutState") == "FAILED"}
    findings: list[Finding] = []
    for deployment in valid:
        state = text(deployment.get("rolloutState"))
        reason = text(deployment.get("rolloutStateReason"))
        rollback = _ROLLING_BACK.search(reason)
        failed = integer(deployment.get("failedTasks")) or 0
        if state == "FAILED":
            cause = Cause.DEPLOYMENT_CIRCUIT_BREAKER
            because = f"deployment {deployment['id']} failed after {failed} failed tasks"
        elif rollback and not failed_ids:
            cause = Cause.DEPLOYMENT_CIRCUIT_BREAKER
            because = f"deployment {deployment['id']} is rolling back to {rollback.group('target')}"
        elif state == "IN_PROGRESS" and deployment.get("status") == "PRIMARY" and failed > 0 and not rollback:
            cause = (task_causes or {}).get(deployment["id"]) or fallback_cause or Cause.UNKNOWN
            guard = (
                "the circuit breaker will stop it" + (" and roll back" if rollback_on else "")
                if breaker_on
                else "no circuit breaker will stop it"
            )
            because = f"deployment {deployment['id']} is failing ({failed} failed tasks; {guard})"
        else:
            continue
        task_definition = family_revision(text(deployment.get("taskDefinition")))
        evidence = [
            (
                f"deployment {deployment['id']}: status {deployment.get('status')}, rolloutState {state}, "
                f"failedTasks {failed}, taskDefinition {task_definition}"
            )
        ]
        if reason:
            evidence.append(f"rolloutStateReason {reason!r}")
        evidence.append(
            f"circuit breaker {'enabled' if breaker_on else 'disabled'}" + (", rollback on" if rollback_on else "")
        )
        findings.append(
            Finding(
                cause=cause,
                source=deployment["id"],
                source_kind=SourceKind.DEPLOYMENT,
                subject=base._replace(
                    task_definition=task_definition,
                    message=reason,
                    rollout_state=state,
                    failed_tasks=failed,
                    circuit_breaker=breaker_on,
                    rollback=rollback_on,
                ),
                evidence=tuple(evidence),
                summary=f"{base.service}: {because}",
                occurred_at=as_datetime(deployment.get("updatedAt") or deployment.get("createdAt")),
            )
        )
    return findings
