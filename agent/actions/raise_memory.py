"""raise_memory: a new task definition revision with more memory for the container that ran out.

Sized from evidence, the largest of: the container's hard limit times `factor` (at least
`min_increase_mib` more); the largest limit at which the container was OOM-killed lately (ECS keeps
stopped tasks about an hour, so a raise that did not help is seen here even after it was undone) times
`factor`; and Container Insights' peak MemoryUtilized of the service's tasks, when observe read it,
times `headroom`. Rounded up to 128 MiB, never above `max_mib`, and never a size the container already
ran out of (then there is nothing left to try, and the policy escalates). The proposal names the
reading that decided. On Fargate the task size must stay one of the CPU/memory pairs Fargate offers,
so the task memory moves to the smallest valid size that holds every container, and the CPU
moves up only when that CPU has no such size. Then the service is pointed at the new revision.
Registering a revision is a change people review, so the bundled policy asks for approval.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, ApiCall, Change, Context, Derived, Expect, Params, Plan, Ref, update_service
from agent.arns import family_revision, region_of
from agent.diagnose.fields import integer
from agent.diagnose.tasks import diagnose_task
from agent.model import Cause

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from agent.model import ServiceView
    from agent.state import ServiceState

# Fargate's task sizes: CPU units -> the memory sizes (MiB) it accepts.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
# Fields DescribeTaskDefinition returns that RegisterTaskDefinition accepts back.
_REGISTERABLE = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
    "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
)  # fmt: skip


def fargate_size(cpu: int, memory_needed: int) -> tuple[int, int] | None:
    """The smallest valid Fargate (cpu, memory) holding `memory_needed` MiB, CPU no lower than `cpu`."""
    for units in sorted(FARGATE_SIZES):
        if units < cpu:
            continue
        fitting = [size for size in FARGATE_SIZES[units] if size >= memory_needed]
        if fitting:
            return units, fitting[0]
    return None


class RaiseMemoryParams(Params):
    factor: float = Field(default=1.5, gt=1.0, le=10.0, description="multiply the container's hard limit")
    min_increase_mib: int = Field(default=256, ge=1)
    max_mib: int = Field(default=8192, ge=128, description="never give the container more than this")
    headroom: float = Field(
        default=1.25, ge=1.0, le=10.0, description="multiply Container Insights' peak MemoryUtilized, when known"
    )


def container_limit(definition: Mapping[str, Any], container: str) -> int | None:
    """The hard limit (MiB) `container` is killed at: its own, else its reservation, else the task's."""
    found = next(
        (c for c in definition.get("containerDefinitions") or [] if isinstance(c, dict) and c.get("name") == container),
        None,
    )
    if found is None:
        return None
    return integer(found.get("memory")) or integer(found.get("memoryReservation")) or integer(definition.get("memory"))


def oom_limits(service: ServiceView, container: str) -> Iterator[tuple[str, int]]:
    """(revision, limit) of every stopped task ECS still shows whose `container` was OOM-killed."""
    for task in service.stopped_tasks:
        finding = diagnose_task(task)
        if finding is None or finding.cause is not Cause.OOM or finding.subject.container != container:
            continue
        revision = family_revision(str(task.get("taskDefinitionArn") or "")) or ""
        definition = service.task_definitions.get(revision)
        limit = container_limit(definition, container) if definition else None
        if limit is None:
            stopped: Mapping[str, Any] = next(
                (c for c in task.get("containers") or [] if c.get("name") == container), {}
            )
            limit = integer(stopped.get("memory")) or integer(task.get("memory"))
        if limit:
            yield revision, limit


def size_memory(
    service: ServiceView,
    containers: Sequence[Mapping[str, Any]],
    container: str,
    current: int,
    params: RaiseMemoryParams,
) -> tuple[int, str] | None:
    """(MiB, why) for `container`, whose hard limit is `current`; None when nothing is left to try."""
    signals = [
        (max(current * params.factor, current + params.min_increase_mib), f"the limit of {current} MiB", params.factor)
    ]
    killed: tuple[str, int] | None = max(oom_limits(service, container), key=lambda k: k[1], default=None)
    if killed is not None:
        revision, limit = killed
        signals.append((limit * params.factor, f"tasks of {revision} were OOM-killed at {limit} MiB", params.factor))
    # Container Insights measures the whole task: the container's share is what the others leave.
    others = sum(
        int(c.get("memory") or c.get("memoryReservation") or 0) for c in containers if c.get("name") != container
    )
    peak = (service.memory_peak_mib or 0.0) - others
    if service.memory_peak_mib is not None and peak > 0:
        signals.append(
            (peak * params.headroom, f"Container Insights' peak MemoryUtilized is {peak:.0f} MiB", params.headroom)
        )
    wanted, reason, times = max(signals, key=lambda s: s[0])
    why = f"{reason}: {times:g} x that"
    if len(signals) > 1:
        why += " (also weighed: " + "; ".join(r for _, r, _ in signals if r != reason) + ")"
    desired = min(math.ceil(wanted / 128) * 128, params.max_mib)
    if desired <= current or (killed is not None and desired <= killed[1]):
        return None  # within max_mib, nothing the container has not already run out of
    if wanted > params.max_mib:
        why += f"; capped at max_mib ({params.max_mib})"
    return desired, why


class RaiseMemory(Action[RaiseMemoryParams]):
    name: ClassVar[str] = "raise_memory"
    params_model = RaiseMemoryParams
    # Tagging on create needs ecs:TagResource; undoing a change that did not help deregisters the revision.
    permissions: ClassVar[tuple[str, ...]] = (
        "ecs:RegisterTaskDefinition",
        "ecs:TagResource",
        "ecs:UpdateService",
        "ecs:DeregisterTaskDefinition",
        "iam:PassRole",
    )
    dry_run_description: ClassVar[str] = "would register a revision with more memory and deploy it"
    revert_by_default: ClassVar[bool] = True  # otherwise a revision nobody needs lingers

    def plan(self, context: Context, params: RaiseMemoryParams) -> Plan | None:
        service = context.service
        definition = service.task_definitions.get(service.task_definition)
        container_name = next((f.subject.container for f in context.findings if f.subject.container), None)
        if not definition or not container_name:
            return None
        containers = [dict(c) for c in definition.get("containerDefinitions") or []]
        container = next((c for c in containers if c.get("name") == container_name), None)
        if container is None:
            return None
        current = int(container.get("memory") or container.get("memoryReservation") or definition.get("memory") or 0)
        if current <= 0:
            return None
        sized = size_memory(service, containers, container_name, current, params)
        if sized is None:
            return None
        desired, why = sized
        container["memory"] = desired
        set_container: dict[str, int] = {"memory": desired}
        if int(container.get("memoryReservation") or 0) > desired:
            container["memoryReservation"] = desired
            set_container["memoryReservation"] = desired
        changes = [Change(f"containerDefinitions[{container_name}].memory", current, desired)]
        payload: dict[str, Any] = {key: definition[key] for key in _REGISTERABLE if definition.get(key) is not None}
        payload["containerDefinitions"] = containers
        set_fields: dict[str, str] = {}
        needed = sum(int(c.get("memory") or c.get("memoryReservation") or 0) for c in containers)
        task_memory = int(definition.get("memory") or 0)
        if "FARGATE" in (definition.get("requiresCompatibilities") or []) or service.launch_type == "FARGATE":
            task_cpu = int(definition.get("cpu") or 256)
            size = fargate_size(task_cpu, max(task_memory, needed))
            if size is None:
                return None
            if size[0] != task_cpu:
                changes.append(Change("cpu", str(task_cpu), str(size[0])))
                set_fields["cpu"] = str(size[0])
            if size[1] != task_memory:
                changes.append(Change("memory", str(task_memory), str(size[1])))
                set_fields["memory"] = str(size[1])
        elif task_memory and needed > task_memory:
            changes.append(Change("memory", str(task_memory), str(needed)))
            set_fields["memory"] = str(needed)
        payload.update(set_fields)
        family = str(definition.get("family") or service.task_definition.split(":", 1)[0])
        changes.append(Change("taskDefinition", service.task_definition, f"{family}:<next revision>"))
        register = ApiCall(
            "ecs",
            "RegisterTaskDefinition",
            payload,
            outputs={"revision": "taskDefinition.taskDefinitionArn"},
            # Found again by the change's tag if the answer is lost or the agent restarts mid-way.
            expect=Expect("ecs", "ListTaskDefinitions", {"familyPrefix": family}, "", None, "tagged"),
            tag_change=True,
            derived=Derived(
                read=ApiCall("ecs", "DescribeTaskDefinition", {"taskDefinition": service.task_definition}),
                query="taskDefinition",
                keep=tuple(key for key in _REGISTERABLE if definition.get(key) is not None),
                set_fields=set_fields,
                set_items=tuple(
                    ("containerDefinitions", "name", container_name, key, value) for key, value in set_container.items()
                ),
            ),
        )
        return Plan(
            action=self.name,
            summary=f"give container {container_name} {desired} MiB (was {current} MiB) in a new revision of {family}",
            changes=tuple(changes),
            calls=(register, update_service(service, taskDefinition=Ref("revision"))),
            region=context.region,
            decided_by=why,
        )

    def state_after(self, changes: Sequence[Change], state: ServiceState) -> ServiceState:
        # Undoing a raise deregisters its revision: a rollback must never return to it, even if it was
        # steady for a while before its tasks ran out of memory again.
        if [c.field for c in changes] != ["taskDefinition"] or "<" in str(changes[0].desired):
            return state
        undone = str(changes[0].current)
        return replace(state, bad_revisions=(*[r for r in state.bad_revisions if r != undone], undone))

    def supersede(self, plan: Plan, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        # A raise that was not enough needs no undo when the next change moves the service to another
        # revision anyway (a bigger raise, a rollback): the one that did not help is deregistered with it.
        revision = outputs.get("revision")
        original = next((c.current for c in changes if c.field == "taskDefinition"), None)
        if not revision or not original or not any(c.field == "taskDefinition" for c in plan.changes):
            return None
        old = revision.rsplit("/", 1)[-1]
        if plan.action == self.name:  # undoing the next raise returns to where this one started
            plan = replace(
                plan,
                changes=tuple(
                    Change(c.field, original, c.desired) if c.field == "taskDefinition" else c for c in plan.changes
                ),
            )
        return replace(
            plan,
            summary=f"{plan.summary}; {old}, whose memory was not enough, is deregistered",
            calls=(*plan.calls, _deregister(revision)),
        )

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        previous = next((c.current for c in changes if c.field == "taskDefinition"), None)
        revision = outputs.get("revision")
        if not previous or not revision:
            return None
        deregister = _deregister(revision)
        new = revision.rsplit("/", 1)[-1]
        return Plan(
            action=self.name,
            summary=f"go back to {previous} and deregister {new}, whose extra memory did not help",
            changes=(Change("taskDefinition", new, previous),),
            calls=(update_service(service, taskDefinition=previous), deregister),
            region=region_of(service.arn),
        )


def _deregister(revision: str) -> ApiCall:
    return ApiCall(
        "ecs",
        "DeregisterTaskDefinition",
        {"taskDefinition": revision},
        expect=Expect(
            "ecs", "DescribeTaskDefinition", {"taskDefinition": revision}, "taskDefinition.status", "INACTIVE"
        ),
    )
