"""One task's life, from PROVISIONING to STOPPED, as the ECS agent and the container runtime live it.

`advance` applies everything that is due by `now`, in time order, stamping each change with the
simulated time it happened at (not the tick's), and reports what happened so that the scheduler can
react and write its service events. Side effects outside the task (log lines, target registration)
go through `TaskEffects`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from agent.sim import wording
from agent.sim.health import target_verdict
from agent.sim.state import (
    DEPROVISIONING,
    NOT_YET_RUNNING,
    PENDING,
    PROVISIONING,
    RUNNING,
    STOPPED,
    STOPPING,
    SimTask,
    Target,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

STOP_TIMEOUT = timedelta(seconds=30)  # SIGTERM, then SIGKILL after the container's stopTimeout
GRACEFUL_EXIT = timedelta(seconds=2)  # a ready app exits cleanly on SIGTERM
SETTLE = timedelta(seconds=8)  # from the containers' exit to lastStatus STOPPED (cleanup, ENI release)


class Change(StrEnum):
    """What happened to a task during one `advance`."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED_TO_START = "failed_to_start"
    EXITED = "exited"  # the essential container exited by itself
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # the scheduler must stop it: ELB health checks failed
    DRAINED = "drained"
    STOPPED = "stopped"
    QUIET = "quiet"  # a step the scheduler has nothing to say about


@dataclass(frozen=True, slots=True)
class Happened:
    change: Change
    at: datetime


class TaskEffects(Protocol):
    def write_logs(self, group: str, stream: str, lines: Sequence[tuple[datetime, str]]) -> None: ...

    def register_target(self, target_group_arn: str, target_id: str, port: int) -> None: ...

    def deregister_target(self, target_group_arn: str, target_id: str) -> None: ...


def _touch(task: SimTask) -> None:
    task.version += 1
    task.dirty = True


def _log(task: SimTask, effects: TaskEffects, at: datetime, lines: Sequence[str]) -> None:
    if not task.log_group or not lines:
        return
    app = next((c for c in task.containers if c.essential), task.containers[0])
    stream = f"{task.log_stream_prefix}/{app.name}/{task.task_id}" if task.log_stream_prefix else task.task_id
    step = timedelta(milliseconds=120)
    effects.write_logs(task.log_group, stream, [(at + step * i, line) for i, line in enumerate(lines)])


def advance(task: SimTask, now: datetime, effects: TaskEffects) -> list[Happened]:
    """Apply every transition of `task` due by `now`; returns them in the order they happened."""
    happened: list[Happened] = []
    for _ in range(12):  # each pass applies at most one step; a task has fewer than a dozen
        step = _next_step(task, now, effects)
        if step is None:
            break
        happened.append(step)
    return happened


def _next_step(task: SimTask, now: datetime, effects: TaskEffects) -> Happened | None:
    if task.last_status == STOPPED:
        return None
    if task.last_status == PROVISIONING and now >= task.pending_at:
        task.last_status = PENDING
        task.connectivity_at = task.pending_at - timedelta(seconds=2)
        task.pull_started_at = task.pull_started_at_planned
        _touch(task)
        return Happened(Change.PENDING, task.pending_at)
    if task.last_status in NOT_YET_RUNNING:
        if task.start_failure and task.start_failure_at and now >= task.start_failure_at:
            _fail_to_start(task, task.start_failure_at, task.start_failure)
            return Happened(Change.FAILED_TO_START, task.start_failure_at)
        if task.running_at and now >= task.running_at and task.last_status == PENDING:
            _start(task, task.running_at, effects)
            return Happened(Change.RUNNING, task.running_at)
        return None
    due = [(at, kind) for at, kind in _pending_steps(task) if at <= now]
    if not due:
        return None
    at, kind = min(due, key=lambda d: d[0])
    return _apply(task, kind, at, effects)


def _pending_steps(task: SimTask) -> list[tuple[datetime, str]]:
    steps: list[tuple[datetime, str]] = []
    target = task.target
    if target is not None and task.active and target.state != "draining":
        if task.healthy_at and target.state != "healthy":
            steps.append((task.healthy_at, "healthy"))
        if task.unhealthy_at and target.state == "initial":
            steps.append((task.unhealthy_at, "unhealthy"))
        if task.health_stop_at:
            steps.append((task.health_stop_at, "health_stop"))
    if task.active and task.exit_at:
        steps.append((task.exit_at, "exit"))
    if task.drain_until:
        steps.append((task.drain_until, "drained"))
    if task.kill_at:
        steps.append((task.kill_at, "kill"))
    if task.final_at:
        steps.append((task.final_at, "final"))
    return steps


def _apply(task: SimTask, kind: str, at: datetime, effects: TaskEffects) -> Happened:
    target = task.target
    if kind == "healthy" and target is not None:
        target.state = "healthy"
        task.healthy_at = None
        _touch(task)
        return Happened(Change.HEALTHY, at)
    if kind == "unhealthy" and target is not None:
        target.state = "unhealthy"
        task.unhealthy_at = None
        _touch(task)
        return Happened(Change.QUIET, at)
    if kind == "health_stop" and target is not None:
        task.health_stop_at = None
        begin_stop(
            task,
            at,
            stop_code="ServiceSchedulerInitiated",
            reason=wording.failed_elb_health_checks(target.target_group_arn),
            drain_seconds=task.drain_seconds,
        )
        return Happened(Change.UNHEALTHY, at)
    if kind == "exit":
        _exit(task, at, effects)
        return Happened(Change.EXITED, at)
    if kind == "drained":
        task.drain_until = None
        if target is not None:
            effects.deregister_target(target.target_group_arn, target.target_id)
            task.target = None
        _send_stop(task, at)
        _touch(task)
        return Happened(Change.DRAINED, at)
    if kind == "kill":
        task.kill_at = None
        for container in task.containers:
            if container.last_status != STOPPED:
                container.last_status = STOPPED
                container.exit_code = task.kill_exit_code
        task.execution_stopped_at = at
        task.last_status = DEPROVISIONING if task.launch_type == "FARGATE" else STOPPING
        task.final_at = at + SETTLE
        _touch(task)
        return Happened(Change.QUIET, at)
    task.last_status = STOPPED
    task.stopped_at = at
    task.final_at = None
    _touch(task)
    return Happened(Change.STOPPED, at)


def _fail_to_start(task: SimTask, at: datetime, message: str) -> None:
    task.desired_status = "STOPPED"
    task.last_status = STOPPED
    task.stop_code = "TaskFailedToStart"
    task.stopped_reason = message
    task.stopping_at = at
    task.execution_stopped_at = at
    task.stopped_at = at
    for container in task.containers:
        container.last_status = STOPPED
        container.reason = message
    _touch(task)


def _start(task: SimTask, at: datetime, effects: TaskEffects) -> None:
    task.pull_stopped_at = at - timedelta(seconds=1)
    task.started_at = at
    task.last_status = RUNNING
    for container in task.containers:
        container.last_status = RUNNING
    plan = task.plan
    if plan is not None:
        _log(task, effects, at, plan.start_log)
        task.ready_at = at + timedelta(seconds=plan.ready_after) if plan.ready_after is not None else None
        task.exit_at = at + timedelta(seconds=plan.exit_after) if plan.exit_after is not None else None
    else:
        task.ready_at = at
    if task.target is not None and task.health_check is not None:
        task.target.registered_at = at
        effects.register_target(task.target.target_group_arn, task.target.target_id, task.target.port)
        _judge_health(task, task.grace_period_seconds, first=True)
    _touch(task)


def reconsider_health(task: SimTask, grace_period_seconds: int) -> None:
    """The service's grace period changed: the scheduler judges running targets by the new one."""
    task.grace_period_seconds = grace_period_seconds
    if task.target is None or task.started_at is None or not task.active:
        return
    if task.target.state not in ("healthy", "draining"):
        _judge_health(task, grace_period_seconds, first=False)


def _judge_health(task: SimTask, grace_period_seconds: int, *, first: bool) -> None:
    """When the target turns unhealthy or healthy, and when the scheduler stops the task for it.
    The grace period runs from the task's start, which is also when its target registers."""
    target, check = task.target, task.health_check
    if target is None or check is None:
        return
    at = target.registered_at
    answers = task.ready_at is not None and (task.exit_at is None or task.ready_at < task.exit_at)
    ready_after = (task.ready_at - at).total_seconds() if answers and task.ready_at else None
    verdict = target_verdict(ready_after=ready_after, check=check, grace_after=float(grace_period_seconds))
    if first:
        task.unhealthy_at = _after(at, verdict.unhealthy_after)
        task.healthy_at = _after(at, verdict.healthy_after)
    task.health_stop_at = _after(at, verdict.stop_after)


def _after(at: datetime, seconds: float | None) -> datetime | None:
    return at + timedelta(seconds=seconds) if seconds is not None else None


def _exit(task: SimTask, at: datetime, effects: TaskEffects) -> None:
    plan = task.plan
    if plan is not None:
        _log(task, effects, at - timedelta(milliseconds=500), plan.exit_log)
    task.desired_status = "STOPPED"
    task.stop_code = "EssentialContainerExited"
    task.stopped_reason = wording.ESSENTIAL_CONTAINER_EXITED
    task.stopping_at = at
    task.execution_stopped_at = at
    task.exit_at = None
    for container in task.containers:
        container.last_status = STOPPED
        if container.essential and plan is not None:
            container.exit_code = plan.exit_code
            container.reason = plan.reason
        else:
            container.exit_code = 0 if container.exit_code is None else container.exit_code
    if task.target is not None:
        effects.deregister_target(task.target.target_group_arn, task.target.target_id)
        task.exited_target = task.target.target_group_arn
        task.target = None
    task.last_status = DEPROVISIONING if task.launch_type == "FARGATE" else STOPPING
    task.final_at = at + SETTLE
    _touch(task)


def begin_stop(task: SimTask, at: datetime, *, stop_code: str, reason: str, drain_seconds: int = 0) -> bool:
    """The scheduler or a user asks the task to stop; returns False if it was already stopping.

    A task that never ran stops at once. One behind a load balancer drains first (the target group's
    deregistration delay), then gets SIGTERM; an app that is not answering yet ignores it and is
    killed (exit 137) after the stop timeout.
    """
    if not task.active:
        return False
    task.desired_status = "STOPPED"
    task.stop_code = stop_code
    task.stopped_reason = reason
    if task.last_status in NOT_YET_RUNNING:
        task.last_status = STOPPED
        task.stopping_at = at
        task.execution_stopped_at = at
        task.stopped_at = at
        for container in task.containers:
            container.last_status = STOPPED
        _touch(task)
        return True
    if task.target is not None and task.target.state != "draining":
        task.target.state = "draining"
        task.drain_until = at + timedelta(seconds=drain_seconds)
        task.exit_at = None
        task.health_stop_at = None
        _touch(task)
        return True
    _send_stop(task, at)
    _touch(task)
    return True


def _send_stop(task: SimTask, at: datetime) -> None:
    task.stopping_at = at
    task.exit_at = None
    task.last_status = STOPPING if task.last_status == RUNNING else task.last_status
    responsive = task.ready_at is not None and task.ready_at <= at
    task.kill_exit_code = 0 if responsive else 137
    task.kill_at = at + (GRACEFUL_EXIT if responsive else STOP_TIMEOUT)


def new_target(target_group_arn: str, target_id: str, port: int, at: datetime) -> Target:
    return Target(target_group_arn=target_group_arn, target_id=target_id, port=port, registered_at=at)
