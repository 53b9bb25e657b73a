"""The runtime moto lacks: ECS's control plane for one account and Region. It launches, places, runs,
health-checks and stops tasks, drives deployments, and applies what clients change through the public
APIs, one simulated tick at a time.

`Runtime.tick(now)` is one pass of ECS's control plane over every service; the world calls it from
`advance`. The work is split by concern: `scheduler` (each service's deployments and replacements),
`lifecycle` (each task's transitions), `launch` (a new task and its plan), `publish` (what clients see:
moto's records and EventBridge events) and `wire` (the runtime's part in each request).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.sim import eventbridge, lifecycle, rollout, scheduler, wording
from agent.sim import moto_bridge as bridge
from agent.sim.capacity import Capacity
from agent.sim.index import TaskIndex
from agent.sim.launch import Ids, Subnet, TaskLauncher
from agent.sim.placement import Unplaceable
from agent.sim.profiles import AppProfile
from agent.sim.publish import Projector
from agent.sim.state import STOPPED, SimDeployment, SimService, SimTask

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.sim.eventbridge import Entry

__all__ = ["STOPPED_TASK_RETENTION", "Runtime", "Subnet"]

STOPPED_TASK_RETENTION = timedelta(hours=1)
_EXPIRY_SCAN = timedelta(seconds=60)


class Runtime:
    """Owns every task, deployment and service event of one account and Region, and the clock's present."""

    def __init__(self, *, region: str, account_id: str, start: datetime, seed: int) -> None:
        self.region = region
        self.account_id = account_id
        self.now = start
        self.rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self.ids = Ids(self.rng)
        self.services: dict[tuple[str, str], SimService] = {}
        self.cluster_arns: dict[str, str] = {}
        self.capacity = Capacity(region)
        self.profiles: dict[str, AppProfile] = {}
        self.index = TaskIndex()
        self.launcher = TaskLauncher(
            region=region,
            account_id=account_id,
            ids=self.ids,
            capacity=self.capacity,
            profiles=self.profiles,
            index=self.index,
        )
        self.projector = Projector(
            region=region,
            services=self.services,
            cluster_arns=self.cluster_arns,
            capacity=self.capacity,
            index=self.index,
            clock=lambda: self.now,
        )
        self._configs_dirty = False
        self._last_expiry = start

    @property
    def subnets(self) -> list[Subnet]:
        return self.launcher.subnets

    @subnets.setter
    def subnets(self, subnets: list[Subnet]) -> None:
        self.launcher.subnets = subnets

    # --- what the scheduler needs (SchedulerEnv) ---------------------------------------------------------

    def event_id(self) -> str:
        return self.ids.uuid()

    def publish(self, entry: Entry) -> None:
        self.projector.publish(entry)

    def set_service_task_definition(self, service: SimService, task_definition_arn: str) -> None:
        bridge.write_service(self.region, service.cluster, service.name, task_definition=task_definition_arn)

    def write_logs(self, group: str, stream: str, lines: Sequence[tuple[datetime, str]]) -> None:
        bridge.put_log_lines(self.region, group, stream, [(int(at.timestamp() * 1000), text) for at, text in lines])

    def register_target(self, target_group_arn: str, target_id: str, port: int) -> None:
        bridge.register_target(self.region, target_group_arn, target_id, port)

    def deregister_target(self, target_group_arn: str, target_id: str) -> None:
        bridge.deregister_target(self.region, target_group_arn, target_id)
        self.index.targets.pop((target_group_arn, target_id), None)

    def placement_failed(self, service: SimService, failure: Unplaceable, now: datetime) -> None:
        ec2 = self.capacity.clusters.get(service.cluster)
        if failure.closest is None:
            message = wording.placement_no_instances(service.name)
            reason = "RESOURCE:CPU"
        else:
            message = wording.placement_insufficient(service.name, failure.closest, failure.resource or "CPU")
            reason = f"RESOURCE:{failure.resource or 'CPU'}"
        if scheduler.add_problem(service, message, now, self):
            extra: dict[str, Any] = {"reason": reason}
            if failure.closest is not None:
                extra["containerInstanceArns"] = [
                    bridge.container_instance_arn(self.region, service.cluster, failure.closest)
                ]
            elif ec2 is not None:
                extra["capacityProviderArns"] = [self._capacity_provider_arn(ec2.capacity_provider)]
            self.publish(
                eventbridge.service_action(
                    service_arn=service.arn,
                    cluster_arn=self.cluster_arns[service.cluster],
                    event_type="ERROR",
                    event_name="SERVICE_TASK_PLACEMENT_FAILURE",
                    at=now,
                    extra=extra,
                )
            )

    def _capacity_provider_arn(self, name: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:capacity-provider/{name}"

    def create_task(self, service: SimService, deployment: SimDeployment, now: datetime) -> SimTask | Unplaceable:
        return self.launcher.launch(service, deployment, now)

    def task_definition(self, reference: str) -> bridge.TaskDefinitionView | None:
        return self.launcher.task_definition(reference)

    # --- services: what clients configured -----------------------------------------------------------------

    def adopt(self, config: bridge.ServiceConfig, params: Mapping[str, Any], now: datetime) -> SimService:
        """Take charge of a service just created (by CreateService or a builder)."""
        definition = self.task_definition(config.task_definition)
        task_definition_arn = definition.arn if definition else config.task_definition
        ec2 = self.capacity.clusters.get(config.cluster)
        strategy = list(params.get("capacityProviderStrategy") or [])
        if not strategy and ec2 is not None and not params.get("launchType"):
            strategy = [{"capacityProvider": ec2.capacity_provider, "weight": 1, "base": 0}]
        capacity_provider = str(strategy[0]["capacityProvider"]) if strategy else None
        launch_type = None if capacity_provider else (config.launch_type or "EC2")
        configuration = rollout.merged_configuration(None, params.get("deploymentConfiguration"))
        balancers = config.load_balancers
        grace = params.get("healthCheckGracePeriodSeconds")
        grace_seconds = int(grace) if grace is not None else 0
        self.cluster_arns.setdefault(
            config.cluster, f"arn:aws:ecs:{self.region}:{self.account_id}:cluster/{config.cluster}"
        )
        service = SimService(
            cluster=config.cluster,
            name=config.name,
            arn=config.arn,
            launch_type=launch_type,
            capacity_provider=capacity_provider,
            task_definition_arn=task_definition_arn,
            desired_count=config.desired_count,
            grace_period=grace_seconds,
            deployment_configuration=configuration,
            load_balancer=balancers[0] if balancers else None,
            network_configuration=config.network_configuration,
            created_at=now,
        )
        self.services[(config.cluster, config.name)] = service
        fields: dict[str, Any] = {
            "task_definition": task_definition_arn,
            "deployment_configuration": configuration,
            "created_at": now,
            "created_by": f"arn:aws:iam::{self.account_id}:role/ecs-deployer",
            "scheduling_strategy": "REPLICA",
            "enable_ecs_managed_tags": bool(params.get("enableECSManagedTags", False)),
            "launch_type": launch_type,
        }
        if balancers or grace is not None:
            fields["health_check_grace_period_seconds"] = grace_seconds
        if strategy:
            fields["capacity_provider_strategy"] = strategy
        if launch_type == "FARGATE":
            fields["platform_version"] = "LATEST"
            fields["platform_family"] = "Linux"
        bridge.write_service(self.region, config.cluster, config.name, **fields)
        scheduler.start_deployment(service, task_definition_arn, now, self)
        self.projector.service(service)
        return service

    def _sync_service(self, service: SimService, config: bridge.ServiceConfig, now: datetime, *, force: bool) -> None:
        """Apply what a client changed through UpdateService (or anything else) since the last pass."""
        if config.status != "ACTIVE" and not service.deleted:
            service.deleted = True
            service.desired_count = 0
            service.dirty = True
            bridge.write_service(self.region, service.cluster, service.name, desired_count=0)
        definition = self.task_definition(config.task_definition)
        if definition is not None and config.task_definition != definition.arn:
            bridge.write_service(self.region, service.cluster, service.name, task_definition=definition.arn)
        arn = definition.arn if definition is not None else service.task_definition_arn
        if not service.deleted and config.desired_count != service.desired_count:
            service.desired_count = config.desired_count
            if service.deployments:
                service.primary.desired_count = config.desired_count
                service.primary.updated_at = now
            service.dirty = True
        if config.grace_period is not None and config.grace_period != service.grace_period:
            service.grace_period = config.grace_period
            for task in service.tasks.values():
                lifecycle.reconsider_health(task, config.grace_period)
            service.dirty = True
        merged = rollout.merged_configuration(service.deployment_configuration, config.deployment_configuration)
        if merged != config.deployment_configuration:
            bridge.write_service(self.region, service.cluster, service.name, deployment_configuration=merged)
        if merged != service.deployment_configuration:
            service.deployment_configuration = merged
            service.dirty = True
        if force or arn != service.task_definition_arn:
            scheduler.start_deployment(service, arn, now, self)
        if service.dirty:
            service.wake_at = now

    def sync_configs(self, now: datetime) -> None:
        for config in bridge.service_configs(self.region):
            service = self.services.get((config.cluster, config.name))
            if service is not None:
                self._sync_service(service, config, now, force=False)
        self._configs_dirty = False

    def updated(self, cluster: str, name: str, *, force: bool) -> bool:
        """A client called UpdateService: apply it now (ECS answers with the new deployment already
        there). False for a service the world does not run."""
        service = self.services.get((cluster, name))
        config = bridge.service_config(self.region, cluster, name)
        if service is None or config is None:
            return False
        self._sync_service(service, config, self.now, force=force)
        self.projector.service(service)
        return True

    def configs_changed(self) -> None:
        """A client changed something: the next pass re-reads every service's configuration."""
        self._configs_dirty = True

    def task_changed(self, task: SimTask) -> None:
        """A client changed a task (StopTask): show it at once, and let its service react next pass."""
        service = self.services.get((task.cluster, task.service))
        if service is not None:
            service.dirty = True
            service.wake_at = self.now
        self.projector.task(task)

    # --- the pass ----------------------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        self.now = now
        # Events are built only when a rule could deliver them.
        self.projector.events_wanted = bridge.has_event_rules(self.region)
        if self._configs_dirty:
            self.sync_configs(now)
        for ec2_instance_id in self.capacity.sync(now):
            self._host_gone(ec2_instance_id, now)
        for cluster in self.capacity.clusters.values():
            cluster.unplaced = []
        reconciled = []
        for service in self.services.values():
            if service.steady and not service.dirty and (service.wake_at is None or service.wake_at > now):
                continue
            scheduler.reconcile(service, now, self)
            service.wake_at = _next_wake(service)
            reconciled.append(service)
        if self.capacity.clusters:
            by_cluster = {name: list(holders.values()) for name, holders in self.index.holders.items()}
            self.capacity.managed_scaling(now, by_cluster)
        if now - self._last_expiry >= _EXPIRY_SCAN:
            self._expire(now)
            self._last_expiry = now
        # Only a service this pass reconciled can have changed: the others were steady, clean and not due.
        self.projector.project(reconciled)

    def _host_gone(self, ec2_instance_id: str, now: datetime) -> None:
        for service in self.services.values():
            for task in service.tasks.values():
                if task.ec2_instance_id == ec2_instance_id and task.last_status != STOPPED:
                    lifecycle.begin_stop(
                        task, now, stop_code="TerminationNotice", reason=wording.host_terminated(ec2_instance_id)
                    )
                    task.kill_at = now
                    service.dirty = True

    def _expire(self, now: datetime) -> None:
        for service in self.services.values():
            expired = [
                t
                for t in service.tasks.values()
                if t.last_status == STOPPED and t.stopped_at and now - t.stopped_at >= STOPPED_TASK_RETENTION
            ]
            for task in expired:
                del service.tasks[task.task_id]
                self.index.forget(task)
                bridge.remove_task(self.region, task.cluster, task.arn)

    def project(self) -> None:
        self.projector.project()

    def take_events(self) -> list[Entry]:
        """The EventBridge events ECS sent since the last call (the world delivers them)."""
        return self.projector.take_events()

    def target_health(self, target_group_arn: str, target_id: str) -> tuple[str, str | None, str | None] | None:
        task = self.index.targets.get((target_group_arn, target_id))
        if task is None or task.target is None:
            return None
        return {
            "initial": wording.TARGET_INITIAL,
            "healthy": wording.TARGET_HEALTHY,
            "unhealthy": wording.TARGET_UNHEALTHY,
            "draining": wording.TARGET_DRAINING,
        }[task.target.state]


def _next_wake(service: SimService) -> datetime | None:
    """The earliest moment anything of this service is due; None when only a change can wake it."""
    times: list[datetime] = []
    for task in service.tasks.values():
        if task.last_status == STOPPED:
            continue
        if task.last_status in ("PROVISIONING", "PENDING"):
            times.extend(t for t in (task.pending_at, task.start_failure_at, task.running_at) if t is not None)
        times.extend(
            t
            for t in (
                task.healthy_at,
                task.unhealthy_at,
                task.health_stop_at,
                task.exit_at,
                task.drain_until,
                task.kill_at,
                task.final_at,
            )
            if t is not None
        )
    if service.next_launch_at is not None:
        times.append(service.next_launch_at)
    return min(times) if times else None
