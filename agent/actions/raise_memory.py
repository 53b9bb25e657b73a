"""raise_memory: a new task definition revision with more memory for the container that ran out.

The container's hard limit grows by `factor` (at least `min_increase_mib`, rounded up to 128 MiB,
never above `max_mib`). On Fargate the task size must stay one of the CPU/memory pairs Fargate
offers, so the task memory moves to the smallest valid size that holds every container, and the CPU
moves up only when that CPU has no such size. Then the service is pointed at the new revision.
Registering a revision is a change people review, so the bundled policy asks for approval.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.actions.base import Action, ApiCall, Change, Context, Derived, Expect, Params, Plan, Ref, update_service
from agent.arns import region_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.model import ServiceView

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
        desired = math.ceil(max(current * params.factor, current + params.min_increase_mib) / 128) * 128
        desired = min(desired, params.max_mib)
        if desired <= current:
            return None
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
        )

    def revert(self, service: ServiceView, changes: Sequence[Change], outputs: Mapping[str, str]) -> Plan | None:
        previous = next((c.current for c in changes if c.field == "taskDefinition"), None)
        revision = outputs.get("revision")
        if not previous or not revision:
            return None
        deregister = ApiCall(
            "ecs",
            "DeregisterTaskDefinition",
            {"taskDefinition": revision},
            expect=Expect(
                "ecs", "DescribeTaskDefinition", {"taskDefinition": revision}, "taskDefinition.status", "INACTIVE"
            ),
        )
        new = revision.rsplit("/", 1)[-1]
        return Plan(
            action=self.name,
            summary=f"go back to {previous} and deregister {new}, whose extra memory did not help",
            changes=(Change("taskDefinition", new, previous),),
            calls=(update_service(service, taskDefinition=previous), deregister),
            region=region_of(service.arn),
        )
