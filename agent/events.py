"""Event intake: ECS's EventBridge events, as they arrive through SQS, to typed records and service keys.

Pure: no AWS calls, no clock. The caller receives messages (ReceiveMessage), hands them to
`EventIntake.receive`, adds the returned keys to the work queue, and deletes a message only once the
key it is about was handled:

    batch = intake.receive(messages)             # new events, keys to queue, receipts safe to delete now
    for key in batch.keys: queue.add(key)
    delete(batch.ack_now)
    ...
    key = queue.get(); claim = intake.claim(key) # the receipts this reconcile of `key` covers
    reconcile(key); queue.done(key)
    delete(claim.receipts)                       # or intake.release(claim) when it failed

- `ECS Task State Change` carries the task in full (DescribeTasks' shape, ISO timestamps): a STOPPED
  task is diagnosed straight from the event (`diagnose_stopped_task`), no Describe call, and marks its
  service. Tasks not started by a service (RunTask) have no key and are acknowledged at once.
- `ECS Deployment State Change` and `ECS Service Action` mark the service they name.
- At-least-once delivery and reordering change nothing: an event id already seen, or a task event
  whose `detail.version` is not newer than one seen for that task, yields no record and queues no key
  (its message is deleted with the original's claim, or at once when nothing is pending).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.arns import ServiceKey, as_datetime, resource_name, service_key, service_of_group
from agent.diagnose import diagnose_task
from agent.diagnose.fields import integer, text
from agent.diagnose.tasks import is_stopped

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from agent.model import Finding

SOURCE = "aws.ecs"
TASK_STATE_CHANGE = "ECS Task State Change"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"
SERVICE_ACTION = "ECS Service Action"
DEFAULT_REMEMBERED_EVENTS = 100_000
DEFAULT_REMEMBERED_TASKS = 50_000


class MalformedEventError(ValueError):
    """Not an ECS event as EventBridge delivers it; the message names the field."""


@dataclass(frozen=True, slots=True)
class TaskStateChange:
    """A task changed state. `task` is the event's `detail`: a task as DescribeTasks shows it."""

    event_id: str
    key: ServiceKey
    task: Mapping[str, Any]
    version: int
    at: datetime | None

    @property
    def task_arn(self) -> str:
        return text(self.task.get("taskArn"))

    @property
    def stopped(self) -> bool:
        return is_stopped(self.task)


@dataclass(frozen=True, slots=True)
class DeploymentStateChange:
    """A deployment started, completed or failed (`name`: `SERVICE_DEPLOYMENT_*`)."""

    event_id: str
    key: ServiceKey
    name: str
    deployment_id: str
    reason: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class ServiceAction:
    """The service scheduler reported something (`name`: `SERVICE_STEADY_STATE`, `SERVICE_TASK_START_IMPAIRED`...)."""

    event_id: str
    key: ServiceKey
    name: str
    event_type: str  # INFO, WARN or ERROR
    reason: str
    at: datetime | None


EcsEvent = TaskStateChange | DeploymentStateChange | ServiceAction


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event the agent has no use for (another detail type, a task no service started)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not an ECS event as EventBridge delivers it; `reason` names the field."""

    message_id: str
    reason: str


def diagnose_stopped_task(event: TaskStateChange) -> Finding | None:
    """The stopped task's root cause, from the event alone (None if the task has not stopped)."""
    return diagnose_task(event.task, cluster=event.key.cluster)


def parse_event(
    envelope: Mapping[str, Any], *, cluster_of: Callable[[str, str, str], str | None] | None = None
) -> EcsEvent | Ignored:
    """One EventBridge envelope (`version`, `id`, `detail-type`, `source`, `account`, `time`, `region`,
    `resources`, `detail`) to a typed record. Raises MalformedEventError naming the field that is missing or wrong.

    `cluster_of(account, region, service_name)` names the cluster of a service whose ARN is in the old
    format (`service/<name>`) when the event itself does not say (deployment events carry no clusterArn).
    """
    event_id = _required(envelope, "id")
    detail_type = _required(envelope, "detail-type")
    if envelope.get("source") != SOURCE:
        return Ignored(f"source {envelope.get('source')!r} is not {SOURCE}")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEventError("field 'detail' is not an object")
    account, region = _required(envelope, "account"), _required(envelope, "region")
    at = as_datetime(envelope.get("time"))
    if detail_type == TASK_STATE_CHANGE:
        return _task_state_change(event_id, account, region, detail, at)
    if detail_type not in (DEPLOYMENT_STATE_CHANGE, SERVICE_ACTION):
        return Ignored(f"detail-type {detail_type!r}")
    resources = envelope.get("resources")
    service_arn = next((r for r in resources if isinstance(r, str) and ":service/" in r), None) if resources else None
    if service_arn is None:
        raise MalformedEventError("field 'resources' names no ECS service")
    key = service_key(service_arn, cluster=text(detail.get("clusterArn")) or None)
    if key is None and cluster_of is not None and ":service/" in service_arn:
        name = service_arn.rsplit("/", 1)[-1]
        cluster = cluster_of(account, region, name)
        key = service_key(service_arn, cluster=cluster) if cluster else None
    if key is None:
        raise MalformedEventError(f"field 'resources': cannot tell the cluster of {service_arn!r}")
    name = _required(detail, "eventName", where="detail.eventName")
    if detail_type == DEPLOYMENT_STATE_CHANGE:
        return DeploymentStateChange(
            event_id, key, name, text(detail.get("deploymentId")), text(detail.get("reason")), at
        )
    return ServiceAction(event_id, key, name, text(detail.get("eventType")), text(detail.get("reason")), at)


def _task_state_change(
    event_id: str, account: str, region: str, detail: Mapping[str, Any], at: datetime | None
) -> TaskStateChange | Ignored:
    task_arn = _required(detail, "taskArn", where="detail.taskArn")
    cluster_arn = _required(detail, "clusterArn", where="detail.clusterArn")
    version = integer(detail.get("version"))
    if version is None:
        raise MalformedEventError("field 'detail.version' is missing or not a number")
    service = service_of_group(text(detail.get("group")))
    if service is None:
        return Ignored(f"task {task_arn.rsplit('/', 1)[-1]} was not started by a service")
    partition = cluster_arn.split(":", 2)[1] if cluster_arn.startswith("arn:") else "aws"
    key = ServiceKey(account, region, resource_name(cluster_arn), service, partition)
    return TaskStateChange(event_id, key, detail, version, at)


def _body(message: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        body = json.loads(text(message.get("Body")))
    except ValueError as error:
        raise MalformedEventError(f"the body is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise MalformedEventError("the body is not a JSON object")
    return body


def _required(mapping: Mapping[str, Any], name: str, *, where: str | None = None) -> str:
    value = mapping.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"field {where or name!r} is missing or not a string")
    return value


# --- the intake ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """What one `receive` made of a batch of messages."""

    events: tuple[EcsEvent, ...]  # new events, in the order they arrived
    keys: tuple[ServiceKey, ...]  # services to reconcile (each once), in the order first marked
    ack_now: tuple[str, ...]  # receipt handles safe to delete at once
    ignored: tuple[Ignored, ...]
    rejected: tuple[Rejected, ...]
    # Receipt handles of messages about services another replica reconciles: neither remembered nor
    # deleted here, to be handed back to the queue at once for their owner.
    not_ours: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """The messages one reconcile of `key` covers: delete `receipts` once `key` is done."""

    key: ServiceKey
    receipts: tuple[str, ...]


@dataclass
class EventIntake:
    """Deduplicates events and holds each message's receipt until the key it is about was handled.

    Memory is bounded: the newest `remembered_events` event ids and `remembered_tasks` task versions
    are kept (oldest forgotten first); an event older than what is remembered counts as new, which
    costs one extra reconcile and nothing else.
    """

    remembered_events: int = DEFAULT_REMEMBERED_EVENTS
    remembered_tasks: int = DEFAULT_REMEMBERED_TASKS
    cluster_of: Callable[[str, str, str], str | None] | None = None
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, init=False, repr=False)
    _versions: OrderedDict[str, int] = field(default_factory=OrderedDict, init=False, repr=False)
    _pending: dict[ServiceKey, list[str]] = field(default_factory=dict, init=False, repr=False)
    _claimed: dict[ServiceKey, int] = field(default_factory=dict, init=False, repr=False)
    # Copies that arrived while their key was being reconciled: the reconcile under way covers them.
    _riders: dict[ServiceKey, list[str]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def receive(
        self, messages: Iterable[Mapping[str, Any]], *, accepts: Callable[[ServiceKey], bool] | None = None
    ) -> Batch:
        """Messages as ReceiveMessage returns them (`MessageId`, `ReceiptHandle`, `Body`). A message about
        a service `accepts` refuses (another replica's shard) is left alone: see `Batch.not_ours`."""
        with self._lock:
            return self._receive(messages, accepts)

    def _receive(
        self, messages: Iterable[Mapping[str, Any]], accepts: Callable[[ServiceKey], bool] | None = None
    ) -> Batch:
        events: list[EcsEvent] = []
        keys: dict[ServiceKey, None] = {}
        ack_now: list[str] = []
        ignored: list[Ignored] = []
        rejected: list[Rejected] = []
        not_ours: list[str] = []
        for message in messages:
            receipt = text(message.get("ReceiptHandle"))
            message_id = text(message.get("MessageId")) or "<no MessageId>"
            try:
                parsed = parse_event(_body(message), cluster_of=self.cluster_of)
            except MalformedEventError as error:
                rejected.append(Rejected(message_id, f"message {message_id}: {error}"))
                ack_now.append(receipt)  # redelivery cannot fix it
                continue
            if isinstance(parsed, Ignored):
                ignored.append(parsed)
                ack_now.append(receipt)
                continue
            if accepts is not None and not accepts(parsed.key):
                not_ours.append(receipt)
                continue
            if self._is_new(parsed):
                events.append(parsed)
                if not isinstance(parsed, TaskStateChange) or parsed.stopped:
                    keys[parsed.key] = None
                    self._pending.setdefault(parsed.key, []).append(receipt)
                    continue
                ack_now.append(receipt)  # a task starting or running: nothing to reconcile
            elif parsed.key in self._pending:
                self._pending[parsed.key].append(receipt)  # deleted with the original, by the next claim
            elif parsed.key in self._claimed:
                self._riders.setdefault(parsed.key, []).append(receipt)  # deleted when this reconcile ends
            else:
                ack_now.append(receipt)
        return Batch(tuple(events), tuple(keys), tuple(ack_now), tuple(ignored), tuple(rejected), tuple(not_ours))

    def _is_new(self, event: EcsEvent) -> bool:
        if event.event_id in self._seen:
            self._seen.move_to_end(event.event_id)
            return False
        self._remember(self._seen, event.event_id, None, self.remembered_events)
        if isinstance(event, TaskStateChange):
            newest = self._versions.get(event.task_arn)
            if newest is not None and event.version <= newest:
                return False
            self._remember(self._versions, event.task_arn, event.version, self.remembered_tasks)
        return True

    @staticmethod
    def _remember(store: OrderedDict[str, Any], key: str, value: object, limit: int) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)

    def claim(self, key: ServiceKey) -> Claim:
        """Take the receipts waiting on `key` (call when a worker gets the key); messages that arrive
        for it afterwards wait for the next reconcile."""
        with self._lock:
            receipts = tuple(self._pending.pop(key, ()))
            self._claimed[key] = self._claimed.get(key, 0) + 1
            return Claim(key, receipts)

    def finish(self, claim: Claim) -> tuple[str, ...]:
        """`claim.key` was handled: the receipt handles to delete now."""
        with self._lock:
            self._unclaim(claim.key)
            return claim.receipts + tuple(self._riders.pop(claim.key, ()))

    def release(self, claim: Claim) -> None:
        """`claim.key` failed: its messages wait for the next successful reconcile."""
        with self._lock:
            self._unclaim(claim.key)
            waiting = [*claim.receipts, *self._riders.pop(claim.key, ()), *self._pending.get(claim.key, [])]
            if waiting:
                self._pending[claim.key] = waiting

    def _unclaim(self, key: ServiceKey) -> None:
        left = self._claimed.get(key, 0) - 1
        if left > 0:
            self._claimed[key] = left
        else:
            self._claimed.pop(key, None)

    @property
    def pending(self) -> int:
        """Messages held until their key is handled."""
        with self._lock:
            return sum(len(r) for r in self._pending.values()) + sum(len(r) for r in self._riders.values())
