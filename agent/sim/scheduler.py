"""The ECS service scheduler, one service at a time: rolling deployments, the circuit breaker, the
launch back-off, replacement of stopped tasks, and the service events it writes on the way.

`reconcile` is level-triggered: it reads the service's tasks and deployments as they are at `now` and
acts on the difference from the desired state, like the real scheduler's periodic pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from agent.sim import eventbridge, lifecycle, rollout, wording
from agent.sim.lifecycle import Change
from agent.sim.placement import Unplaceable
from agent.sim.state import ACTIVE, COMPLETED, FAILED, IN_PROGRESS, PRIMARY, SimDeployment, SimService, SimTask

if TYPE_CHECKING:
    import random

    from agent.sim.eventbridge import Entry

MAX_EVENTS = 100
# A task without a load balancer counts as healthy once it has stayed up this long: a container that
# exits seconds after starting never lets a deployment complete.
STABLE_AFTER = timedelta(seconds=30)
# ECS repeats a problem event only once its cause is resolved or six hours have passed.
PROBLEM_REPEAT = timedelta(hours=6)


class SchedulerEnv(lifecycle.TaskEffects, Protocol):
    """What the scheduler needs from the world around the service."""

    rng: random.Random
    cluster_arns: dict[str, str]

    def create_task(self, service: SimService, deployment: SimDeployment, now: datetime) -> SimTask | Unplaceable: ...

    def publish(self, entry: Entry) -> None: ...

    def set_service_task_definition(self, service: SimService, task_definition_arn: str) -> None: ...

    def event_id(self) -> str: ...

    def placement_failed(self, service: SimService, failure: Unplaceable, now: datetime) -> None: ...


@dataclass(slots=True)
class _Pass:
    """What one pass did to several tasks at once: ECS writes one event for all of them."""

    stopped: list[SimTask] = field(default_factory=list)  # running tasks it stopped
    registered: list[tuple[str, datetime]] = field(default_factory=list)  # (target group, when)
    deregistered: list[tuple[str, datetime]] = field(default_factory=list)  # targets of exited tasks


def add_event(service: SimService, message: str, at: datetime, env: SchedulerEnv) -> None:
    service.events.insert(0, {"id": env.event_id(), "createdAt": at, "message": message})
    del service.events[MAX_EVENTS:]
    service.dirty = True


def add_problem(service: SimService, message: str, at: datetime, env: SchedulerEnv) -> bool:
    """A problem event, unless the same one is already showing; returns whether it was added."""
    first = service.recent_problems.get(message)
    if first is not None and at - first < PROBLEM_REPEAT:
        return False
    service.recent_problems[message] = at
    add_event(service, message, at, env)
    return True


def _deployment(service: SimService, deployment_id: str) -> SimDeployment | None:
    return next((d for d in service.deployments if d.id == deployment_id), None)


def _service_action(
    service: SimService, env: SchedulerEnv, event_type: str, name: str, at: datetime, **extra: object
) -> None:
    env.publish(
        eventbridge.service_action(
            service_arn=service.arn,
            cluster_arn=env.cluster_arns[service.cluster],
            event_type=event_type,
            event_name=name,
            at=at,
            extra=extra,
        )
    )


def _deployment_event(
    service: SimService,
    env: SchedulerEnv,
    *,
    event_type: str,
    name: str,
    deployment: SimDeployment,
    reason: str,
    at: datetime,
) -> None:
    env.publish(
        eventbridge.deployment_state_change(
            service_arn=service.arn,
            event_type=event_type,
            event_name=name,
            deployment_id=deployment.id,
            reason=reason,
            at=at,
        )
    )


def start_deployment(
    service: SimService, task_definition_arn: str, now: datetime, env: SchedulerEnv, *, reason: str | None = None
) -> SimDeployment:
    """A new PRIMARY deployment (UpdateService with a new task definition, or forceNewDeployment)."""
    if service.deployments:
        previous = service.primary
        if previous.rollout_state == COMPLETED:
            service.last_completed = (previous.id, previous.task_definition_arn)
        previous.status = ACTIVE
        previous.updated_at = now
    deployment_id = rollout.new_deployment_id(env.rng)
    deployment = SimDeployment(
        id=deployment_id,
        task_definition_arn=task_definition_arn,
        status=PRIMARY,
        desired_count=service.desired_count,
        created_at=now,
        updated_at=now,
        rollout_state=IN_PROGRESS,
        rollout_state_reason=reason or wording.rollout_in_progress(deployment_id),
    )
    service.deployments.insert(0, deployment)
    service.task_definition_arn = task_definition_arn
    service.start_failures = 0
    service.next_launch_at = None
    service.steady = False
    service.dirty = True
    _deployment_event(
        service,
        env,
        event_type="INFO",
        name="SERVICE_DEPLOYMENT_IN_PROGRESS",
        deployment=deployment,
        reason=deployment.rollout_state_reason,
        at=now,
    )
    return deployment


def is_healthy(task: SimTask, now: datetime) -> bool:
    """Healthy as the scheduler judges it: passing ELB health checks, or up for `STABLE_AFTER`."""
    if not task.running:
        return False
    if task.target is not None:
        return task.target.state == "healthy"
    return task.started_at is not None and now - task.started_at >= STABLE_AFTER


def reconcile(service: SimService, now: datetime, env: SchedulerEnv) -> None:
    """One scheduler pass over one service."""
    advanced = _Pass()
    _advance_tasks(service, now, env, advanced)
    _write_stop_events(service, now, env, advanced)
    if service.deployments:
        replaced = _Pass()
        _circuit_breaker(service, now, env)
        _launch(service, now, env)
        _replace_old_tasks(service, now, replaced)
        _scale_in(service, now, replaced)
        _write_stop_events(service, now, env, replaced)
        _drop_drained_deployments(service)
        _steady_state(service, now, env)


def _advance_tasks(service: SimService, now: datetime, env: SchedulerEnv, done: _Pass) -> None:
    for task in list(service.tasks.values()):
        if task.last_status == "STOPPED":
            continue
        for happened in lifecycle.advance(task, now, env):
            _react(service, task, happened, env, done)
    for group in sorted({g for g, _ in done.registered}):
        times = [at for g, at in done.registered if g == group]
        add_event(service, wording.registered_targets(service.name, len(times), group), max(times), env)
    for group in sorted({g for g, _ in done.deregistered}):
        times = [at for g, at in done.deregistered if g == group]
        add_event(service, wording.deregistered_targets(service.name, len(times), group), max(times), env)


# Changes that count against a deployment (failedTasks, and so the circuit breaker).
_FAILURES = frozenset({Change.FAILED_TO_START, Change.EXITED, Change.UNHEALTHY})


def _react(service: SimService, task: SimTask, happened: lifecycle.Happened, env: SchedulerEnv, done: _Pass) -> None:
    at = happened.at
    deployment = _deployment(service, task.deployment_id)
    if happened.change in _FAILURES and deployment is not None:
        deployment.failed_tasks += 1
    if happened.change is Change.RUNNING:
        service.start_failures = 0
        if task.target is not None:
            done.registered.append((task.target.target_group_arn, at))
    elif happened.change is Change.FAILED_TO_START:
        service.start_failures += 1
        service.next_launch_at = at + timedelta(seconds=rollout.launch_backoff_seconds(service.start_failures))
        if service.start_failures >= rollout.UNABLE_TO_START_AFTER and add_problem(
            service, wording.unable_to_start(service.name), at, env
        ):
            _service_action(service, env, "WARN", "SERVICE_TASK_START_IMPAIRED", at)
    elif happened.change is Change.EXITED and task.exited_target is not None:
        done.deregistered.append((task.exited_target, at))
    elif happened.change is Change.UNHEALTHY:
        if task.target is not None:
            message = wording.unhealthy_target(
                service.name, task.task_id, task.target.port, task.target.target_group_arn
            )
            add_event(service, message, at, env)
        done.stopped.append(task)
    elif happened.change is Change.STOPPED:
        service.dirty = True


def _circuit_breaker(service: SimService, now: datetime, env: SchedulerEnv) -> None:
    primary = service.primary
    breaker = rollout.breaker_of(service.deployment_configuration)
    if not breaker.enable or primary.rollout_state != IN_PROGRESS:
        return
    if primary.failed_tasks < rollout.breaker_threshold(service.desired_count):
        return
    primary.rollout_state = FAILED
    primary.rollout_state_reason = wording.ROLLOUT_FAILED
    primary.updated_at = now
    service.dirty = True
    add_event(service, wording.deployment_failed(service.name, primary.id), now, env)
    _deployment_event(
        service,
        env,
        event_type="ERROR",
        name="SERVICE_DEPLOYMENT_FAILED",
        deployment=primary,
        reason=wording.DEPLOYMENT_FAILED_EVENT_REASON,
        at=now,
    )
    if not breaker.rollback or service.last_completed is None:
        return
    completed_id, task_definition_arn = service.last_completed
    start_deployment(service, task_definition_arn, now, env, reason=wording.rollout_rolling_back(completed_id))
    env.set_service_task_definition(service, task_definition_arn)
    add_event(service, wording.rolling_back(service.name, completed_id), now, env)


def _launch(service: SimService, now: datetime, env: SchedulerEnv) -> None:
    primary = service.primary
    if primary.rollout_state == FAILED or service.deleted:
        return
    if service.next_launch_at is not None and now < service.next_launch_at:
        return
    maximum, _ = rollout.rolling_limits(service.desired_count, service.deployment_configuration)
    active = [t for t in service.tasks.values() if t.active]
    primary_active = sum(1 for t in active if t.deployment_id == primary.id)
    room = min(service.desired_count - primary_active, maximum - len(active))
    started: list[str] = []
    for _ in range(max(room, 0)):
        created = env.create_task(service, primary, now)
        if isinstance(created, Unplaceable):
            env.placement_failed(service, created, now)
            break
        service.tasks[created.task_id] = created
        started.append(created.task_id)
    if started:
        add_event(service, wording.started_tasks(service.name, started), now, env)


def _stop(task: SimTask, now: datetime, reason: str, done: _Pass) -> None:
    was_running = task.running
    stopped = lifecycle.begin_stop(
        task, now, stop_code="ServiceSchedulerInitiated", reason=reason, drain_seconds=task.drain_seconds
    )
    if stopped and was_running:
        done.stopped.append(task)


def _replace_old_tasks(service: SimService, now: datetime, done: _Pass) -> None:
    primary = service.primary
    reason = wording.scaling_activity(primary.id)
    _, minimum = rollout.rolling_limits(service.desired_count, service.deployment_configuration)
    active = [t for t in service.tasks.values() if t.active]
    healthy_primary = sum(1 for t in active if t.deployment_id == primary.id and is_healthy(t, now))
    # Old tasks that are not healthy (still starting, or failing their health checks) count toward no
    # minimum: they go first, then the healthy ones, oldest first, as far as the minimum allows.
    old = sorted(
        (t for t in active if t.deployment_id != primary.id),
        key=lambda t: (is_healthy(t, now), t.created_at, t.task_id),
    )
    healthy_total = healthy_primary + sum(1 for t in old if is_healthy(t, now))
    for task in old:
        if not is_healthy(task, now):
            _stop(task, now, reason, done)
        elif healthy_primary >= service.desired_count or healthy_total - 1 >= minimum:
            _stop(task, now, reason, done)
            healthy_total -= 1


def _scale_in(service: SimService, now: datetime, done: _Pass) -> None:
    primary = service.primary
    desired = 0 if service.deleted else service.desired_count
    mine = [t for t in service.tasks.values() if t.active and t.deployment_id == primary.id]
    excess = len(mine) - desired
    if excess <= 0:
        return
    # Tasks that are not running yet go first, then the newest.
    for task in sorted(mine, key=lambda t: (t.running, -t.created_at.timestamp()))[:excess]:
        _stop(task, now, wording.scaling_activity(primary.id), done)


def _write_stop_events(service: SimService, now: datetime, env: SchedulerEnv, done: _Pass) -> None:
    if not done.stopped:
        return
    add_event(service, wording.stopped_tasks(service.name, [t.task_id for t in done.stopped]), now, env)
    draining = [t for t in done.stopped if t.target is not None and t.target.state == "draining"]
    if draining:
        groups = sorted({t.target.target_group_arn for t in draining if t.target is not None})
        for group in groups:
            count = sum(1 for t in draining if t.target is not None and t.target.target_group_arn == group)
            add_event(service, wording.deregistered_targets(service.name, count, group), now, env)
        for deployment_id in sorted({t.deployment_id for t in draining}):
            count = sum(1 for t in draining if t.deployment_id == deployment_id)
            add_event(service, wording.draining(service.name, deployment_id, count), now, env)
    _service_action(
        service,
        env,
        "INFO",
        "TASKS_STOPPED",
        now,
        taskArns=[t.arn for t in done.stopped],
        desiredCount=service.desired_count,
    )


def _drop_drained_deployments(service: SimService) -> None:
    busy = {t.deployment_id for t in service.tasks.values() if t.active}
    keep = [service.primary, *(d for d in service.deployments[1:] if d.id in busy)]
    if len(keep) != len(service.deployments):
        service.deployments = keep
        service.dirty = True


def _steady_state(service: SimService, now: datetime, env: SchedulerEnv) -> None:
    primary = service.primary
    active = [t for t in service.tasks.values() if t.active]
    steady = (
        len(service.deployments) == 1
        and primary.rollout_state != FAILED
        and not any(t.pending for t in active)
        and sum(1 for t in active if t.running) == service.desired_count
        and all(is_healthy(t, now) for t in active)
    )
    if not steady:
        service.steady = False
        return
    if primary.rollout_state == IN_PROGRESS:
        primary.rollout_state = COMPLETED
        primary.rollout_state_reason = wording.rollout_completed(primary.id)
        primary.updated_at = now
        service.last_completed = (primary.id, primary.task_definition_arn)
        add_event(service, wording.deployment_completed(service.name, primary.id), now, env)
        _deployment_event(
            service,
            env,
            event_type="INFO",
            name="SERVICE_DEPLOYMENT_COMPLETED",
            deployment=primary,
            reason=primary.rollout_state_reason,
            at=now,
        )
    if not service.steady:
        add_event(service, wording.steady_state(service.name), now, env)
        _service_action(service, env, "INFO", "SERVICE_STEADY_STATE", now)
        service.recent_problems.clear()
    service.steady = True
    service.start_failures = 0
    service.next_launch_at = None
