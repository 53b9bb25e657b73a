"""ECS's EventBridge events (`source: aws.ecs`), shaped as AWS documents them, and their delivery.

`ECS Task State Change` mirrors DescribeTasks with ISO timestamps and a `version`; `ECS Service Action`
and `ECS Deployment State Change` carry `eventType`/`eventName` and the fields their event names use.
The builders are pure. `Delivery` hands events to the rules' targets the way EventBridge does: after a
delay, sometimes twice, not always in order (`DeliveryProfile`), from one seeded generator.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.sim.moto_bridge import TaskView

SOURCE = "aws.ecs"
TASK_STATE_CHANGE = "ECS Task State Change"
SERVICE_ACTION = "ECS Service Action"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"

Entry = dict[str, Any]


def iso(at: datetime) -> str:
    """`2026-04-19T03:12:00.123Z`, the way ECS writes times inside events."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _entry(detail_type: str, resources: list[str], detail: Mapping[str, Any], at: datetime) -> Entry:
    return {
        "Source": SOURCE,
        "DetailType": detail_type,
        "Resources": resources,
        "Detail": json.dumps(detail),
        "Time": at,
    }


def task_state_change(view: TaskView, *, task_arn: str, cluster_arn: str, at: datetime) -> Entry:
    times = {
        "connectivityAt": view.connectivity_at,
        "createdAt": view.created_at,
        "executionStoppedAt": view.execution_stopped_at,
        "pullStartedAt": view.pull_started_at,
        "pullStoppedAt": view.pull_stopped_at,
        "startedAt": view.started_at,
        "stoppingAt": view.stopping_at,
        "stoppedAt": view.stopped_at,
    }
    containers = []
    for c in view.containers:
        container: dict[str, Any] = {
            "containerArn": c.container_arn,
            "lastStatus": c.last_status,
            "name": c.name,
            "image": c.image,
            "taskArn": task_arn,
            "networkInterfaces": list(c.network_interfaces),
            "cpu": c.cpu,
        }
        optional = {
            "imageDigest": c.image_digest,
            "runtimeId": c.runtime_id,
            "exitCode": c.exit_code,
            "reason": c.reason,
            "memory": c.memory,
            "memoryReservation": c.memory_reservation,
        }
        container.update({k: v for k, v in optional.items() if v is not None})
        if c.network_bindings:
            container["networkBindings"] = list(c.network_bindings)
        containers.append(container)
    detail: dict[str, Any] = {
        "attachments": list(view.attachments),
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": view.availability_zone,
        "clusterArn": cluster_arn,
        "containers": containers,
        "cpu": view.cpu,
        "desiredStatus": view.desired_status,
        "group": view.group,
        "lastStatus": view.last_status,
        "launchType": view.launch_type,
        "memory": view.memory,
        "overrides": {"containerOverrides": [{"name": c.name} for c in view.containers]},
        "startedBy": view.started_by,
        "taskArn": task_arn,
        "taskDefinitionArn": view.task_definition_arn,
        "updatedAt": iso(at),
        "version": view.version,
    }
    detail.update({key: iso(value) for key, value in times.items() if value is not None})
    optional_fields = {
        "capacityProviderName": view.capacity_provider_name,
        "connectivity": view.connectivity,
        "containerInstanceArn": view.container_instance_arn,
        "platformVersion": view.platform_version,
        "stopCode": view.stop_code,
        "stoppedReason": view.stopped_reason,
    }
    detail.update({k: v for k, v in optional_fields.items() if v})
    return _entry(TASK_STATE_CHANGE, [task_arn], detail, at)


def service_action(
    *,
    service_arn: str,
    cluster_arn: str,
    event_type: str,
    event_name: str,
    at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> Entry:
    detail: dict[str, Any] = {"eventType": event_type, "eventName": event_name, "clusterArn": cluster_arn}
    detail.update(extra or {})
    detail["createdAt"] = iso(at)
    return _entry(SERVICE_ACTION, [service_arn], detail, at)


def deployment_state_change(
    *, service_arn: str, event_type: str, event_name: str, deployment_id: str, reason: str, at: datetime
) -> Entry:
    detail = {
        "eventType": event_type,
        "eventName": event_name,
        "deploymentId": deployment_id,
        "updatedAt": iso(at),
        "reason": reason,
    }
    return _entry(DEPLOYMENT_STATE_CHANGE, [service_arn], detail, at)


# --- delivery ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryProfile:
    """How EventBridge hands events to their targets, in simulated seconds.

    Each event waits `min_delay`..`max_delay` (uniformly), and with probability `late_rate` another
    `late_delay` at most; with probability `duplicate_rate` it is delivered a second time (the same event
    id, its own delay). Delays that overlap reorder events: EventBridge promises neither order nor
    exactly-once delivery.
    """

    min_delay: float = 0.0
    max_delay: float = 0.0
    late_rate: float = 0.0
    late_delay: float = 0.0
    duplicate_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay or self.late_delay < 0:
            raise ValueError(f"delivery delays must satisfy 0 <= min <= max and late >= 0: {self}")
        for name in ("late_rate", "duplicate_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")

    @classmethod
    def immediate(cls) -> DeliveryProfile:
        """Every event once, in order, in the tick that sent it (the world's default)."""
        return cls()

    @classmethod
    def realistic(cls) -> DeliveryProfile:
        """Sub-second to a few seconds, one event in twenty much later, one in fifty twice."""
        return cls(min_delay=0.3, max_delay=3.0, late_rate=0.05, late_delay=30.0, duplicate_rate=0.02)


@dataclass(frozen=True, slots=True, order=True)
class _Scheduled:
    due: datetime
    sequence: int
    account: str = field(compare=False)
    region: str = field(compare=False)
    event: dict[str, Any] = field(compare=False)


class Delivery:
    """Events on their way from ECS to the rules' targets. Seeded: the same seed, the same deliveries."""

    def __init__(self, seed: int, profile: DeliveryProfile | None = None) -> None:
        self.profile = profile or DeliveryProfile.immediate()
        self._rng = random.Random(f"eventbridge:{seed}")  # noqa: S311 - reproducible, not secret
        self._queue: list[_Scheduled] = []
        self._sequence = itertools.count()
        self.sent = 0
        self.duplicated = 0

    def send(self, account: str, region: str, entries: Sequence[Entry], now: datetime) -> None:
        """ECS sent `entries` at `now`: each gets its event id and its delivery time(s)."""
        for entry in entries:
            event = {
                "id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": account,
                "time": entry["Time"],
                "region": region,
                "resources": list(entry["Resources"]),
                "detail": json.loads(entry["Detail"]),
            }
            copies = 2 if self._rng.random() < self.profile.duplicate_rate else 1
            self.duplicated += copies - 1
            for _ in range(copies):
                due = now + timedelta(seconds=self._delay())
                heapq.heappush(self._queue, _Scheduled(due, next(self._sequence), account, region, event))
            self.sent += 1

    def _delay(self) -> float:
        profile = self.profile
        delay = self._rng.uniform(profile.min_delay, profile.max_delay) if profile.max_delay else 0.0
        if profile.late_rate and self._rng.random() < profile.late_rate:
            delay += self._rng.uniform(0, profile.late_delay)
        return delay

    def due(self, now: datetime) -> list[tuple[str, str, dict[str, Any]]]:
        """The deliveries due by `now`, in the order they arrive: (account, region, event)."""
        ready = []
        while self._queue and self._queue[0].due <= now:
            scheduled = heapq.heappop(self._queue)
            ready.append((scheduled.account, scheduled.region, scheduled.event))
        return ready

    @property
    def in_flight(self) -> int:
        return len(self._queue)
