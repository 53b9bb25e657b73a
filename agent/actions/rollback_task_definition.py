"""rollback_task_definition: put the service back on the last revision that reached steady state.

The target is the revision the agent saw last at steady state (kept in the service's state), or,
during a stuck rollout, the revision of the deployment that COMPLETED before it. Never the revision
being rolled back from, never one recorded as bad, never one whose own tasks are failing right now.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from agent.actions.base import Action, Change, Context, Params, Plan, update_service
from agent.arns import as_datetime
from agent.state import ServiceState

if TYPE_CHECKING:
    from collections.abc import Sequence

_EPOCH = datetime.fromtimestamp(0, tz=UTC)


class RollbackParams(Params):
    """No parameters: the target is decided by what reached steady state."""


def rollback_target(context: Context) -> str | None:
    """The revision to return to, or None when there is no safe one."""
    service = context.service
    current = service.task_definition
    failing = {f.subject.task_definition for f in context.findings if f.failure and f.subject.task_definition}
    completed = sorted(
        (d for d in service.deployments if d.get("rolloutState") == "COMPLETED"),
        key=lambda d: as_datetime(d.get("createdAt")) or _EPOCH,
        reverse=True,
    )
    candidates = [context.state.last_good] + [str(d.get("taskDefinition", "")).rsplit("/", 1)[-1] for d in completed]
    for candidate in candidates:
        if (
            candidate
            and candidate != current
            and candidate not in context.state.bad_revisions
            and candidate not in failing
        ):
            return candidate
    return None


class RollbackTaskDefinition(Action[RollbackParams]):
    name: ClassVar[str] = "rollback_task_definition"
    params_model = RollbackParams
    permissions: ClassVar[tuple[str, ...]] = ("ecs:UpdateService",)
    dry_run_description: ClassVar[str] = "would point the service back at its last good task definition"

    def plan(self, context: Context, params: RollbackParams) -> Plan | None:
        del params
        target = rollback_target(context)
        if target is None:
            return None
        service = context.service
        current = service.task_definition
        return Plan(
            action=self.name,
            summary=f"roll back from {current} to {target}, the last revision that reached steady state",
            changes=(Change("taskDefinition", current, target),),
            calls=(update_service(service, taskDefinition=target),),
            region=context.region,
        )

    def state_after(self, changes: Sequence[Change], state: ServiceState) -> ServiceState:
        # The revision rolled back from failed: a later rollback must never return to it.
        bad = str(changes[0].current)
        return replace(state, bad_revisions=(*[r for r in state.bad_revisions if r != bad], bad))
