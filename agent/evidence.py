"""Stopped-task evidence kept beyond ECS's one hour, so that "3 OOMs in the last 2 hours" still counts
tasks ECS has forgotten, and `diagnose` can explain what happened overnight.

One small protocol, `EvidenceStore`: `record(service_key, task)` and `recent(service_key, since)`.
Tasks go in and come out in DescribeTasks' shape, trimmed to the fields diagnosis reads (`compact`):
a task seen in an event and again in a pass is stored once (by task ARN, the higher `version` wins).

- `MemoryEvidence`: bounded per service and in total, the oldest stop out first.
- `DynamoEvidence`: a DynamoDB table (partition key `service`, sort key `task`, both strings) whose
  items carry a TTL attribute `expiresAt` (epoch seconds), so the table forgets by itself.
- `LayeredEvidence`: memory in front of DynamoDB. Reads stay in memory while memory holds the whole
  window asked for, and go to the table for windows reaching before the process started (or before
  what memory had to drop); writes go to both, and a failing table never loses the memory copy.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from agent.arns import ServiceKey, as_datetime
from agent.diagnose.fields import integer, text
from agent.diagnose.tasks import is_stopped

if TYPE_CHECKING:
    from agent.settings import Settings

DEFAULT_PER_SERVICE = 50
DEFAULT_TOTAL = 20_000
TTL_ATTRIBUTE = "expiresAt"
PARTITION_KEY = "service"
SORT_KEY = "task"

# The fields diagnosis (and a person reading the evidence) uses; the rest of a task is left out.
_TASK_FIELDS = (
    "taskArn",
    "clusterArn",
    "group",
    "startedBy",
    "taskDefinitionArn",
    "lastStatus",
    "desiredStatus",
    "stopCode",
    "stoppedReason",
    "launchType",
    "capacityProviderName",
    "platformVersion",
    "availabilityZone",
    "containerInstanceArn",
    "cpu",
    "memory",
    "version",
    "healthStatus",
)
_TIME_FIELDS = (
    "createdAt",
    "pullStartedAt",
    "pullStoppedAt",
    "startedAt",
    "stoppingAt",
    "executionStoppedAt",
    "stoppedAt",
)
_CONTAINER_FIELDS = (
    "name",
    "image",
    "imageDigest",
    "lastStatus",
    "exitCode",
    "reason",
    "cpu",
    "memory",
    "memoryReservation",
    "healthStatus",
)


class EvidenceStore(Protocol):
    def record(self, service_key: ServiceKey, task: Mapping[str, Any]) -> None:
        """Keep a stopped task of the service (tasks that have not stopped are not evidence: ignored)."""

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]:
        """The service's stopped tasks that stopped at or after `since`, newest first."""


def iso(at: datetime) -> str:
    """`2026-04-19T03:12:00.123Z`: fixed width, so that strings sort as times do."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def compact(task: Mapping[str, Any]) -> dict[str, Any]:
    """The task with only the fields diagnosis reads, times as ISO strings (JSON-safe)."""
    kept: dict[str, Any] = {name: task[name] for name in _TASK_FIELDS if task.get(name) is not None}
    for name in _TIME_FIELDS:
        at = as_datetime(task.get(name))
        if at is not None:
            kept[name] = iso(at)
    containers = task.get("containers")
    if isinstance(containers, list):
        kept["containers"] = [
            {name: c[name] for name in _CONTAINER_FIELDS if c.get(name) is not None}
            for c in containers
            if isinstance(c, dict)
        ]
    return kept


def stopped_at(task: Mapping[str, Any]) -> datetime | None:
    """When the task stopped, or (still stopping) when it was asked to."""
    for name in ("stoppedAt", "executionStoppedAt", "stoppingAt"):
        at = as_datetime(task.get(name))
        if at is not None:
            return at
    return None


class _Stored(NamedTuple):
    at: float  # epoch seconds of the stop
    version: int
    body: str  # the compact task as JSON: about a third of the memory of the same dict


def _encode(task: Mapping[str, Any]) -> _Stored | None:
    if not is_stopped(task) or not text(task.get("taskArn")):
        return None
    at = stopped_at(task)
    if at is None:
        return None
    return _Stored(at.timestamp(), integer(task.get("version")) or 0, json.dumps(compact(task), separators=(",", ":")))


class MemoryEvidence:
    """Evidence in this process: at most `per_service` tasks per service and `total` in all; when full,
    the task that stopped longest ago goes first."""

    def __init__(self, *, per_service: int = DEFAULT_PER_SERVICE, total: int = DEFAULT_TOTAL) -> None:
        if per_service < 1 or total < 1:
            raise ValueError(f"evidence bounds must be at least 1, got per_service={per_service}, total={total}")
        self.per_service, self.total = per_service, total
        self._lock = threading.Lock()
        self._tasks: dict[ServiceKey, dict[str, _Stored]] = {}
        # Every stored task once, by stop time; entries whose task was replaced or dropped are stale.
        self._oldest: list[tuple[float, int, ServiceKey, str]] = []
        self._sequence = itertools.count()
        self._count = 0
        self._dropped_until: dict[ServiceKey, float] = {}

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def record(self, service_key: ServiceKey, task: Mapping[str, Any]) -> None:
        stored = _encode(task)
        if stored is None:
            return
        arn = text(task.get("taskArn"))
        with self._lock:
            tasks = self._tasks.setdefault(service_key, {})
            known = tasks.get(arn)
            if known is not None:
                if stored.version < known.version:
                    return
                tasks[arn] = stored
                if stored.at != known.at:
                    heapq.heappush(self._oldest, (stored.at, next(self._sequence), service_key, arn))
                return
            tasks[arn] = stored
            self._count += 1
            heapq.heappush(self._oldest, (stored.at, next(self._sequence), service_key, arn))
            if len(tasks) > self.per_service:
                self._drop(service_key, min(tasks, key=lambda a: tasks[a].at))
            while self._count > self.total:
                self._drop_oldest()
            if len(self._oldest) > 2 * self._count + 64:
                self._compact_heap()

    def _drop(self, service_key: ServiceKey, arn: str) -> None:
        tasks = self._tasks[service_key]
        gone = tasks.pop(arn)
        self._count -= 1
        self._dropped_until[service_key] = max(self._dropped_until.get(service_key, 0.0), gone.at)
        if not tasks:
            del self._tasks[service_key]

    def _drop_oldest(self) -> None:
        while self._oldest:
            at, _, service_key, arn = heapq.heappop(self._oldest)
            stored = self._tasks.get(service_key, {}).get(arn)
            if stored is not None and stored.at == at:
                self._drop(service_key, arn)
                return

    def _compact_heap(self) -> None:
        self._oldest = [
            (stored.at, next(self._sequence), key, arn)
            for key, tasks in self._tasks.items()
            for arn, stored in tasks.items()
        ]
        heapq.heapify(self._oldest)

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]:
        floor = since.timestamp()
        with self._lock:
            found = [s for s in self._tasks.get(service_key, {}).values() if s.at >= floor]
        found.sort(key=lambda s: s.at, reverse=True)
        return [json.loads(s.body) for s in found]

    def complete_since(self, service_key: ServiceKey) -> datetime | None:
        """The service's tasks that stopped after this time are all still here (None: none was dropped)."""
        with self._lock:
            dropped = self._dropped_until.get(service_key)
        return datetime.fromtimestamp(dropped, tz=UTC) if dropped is not None else None


class AwsCaller(Protocol):
    """What the evidence table needs of `agent.aws.AwsGateway`."""

    def call(self, api: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class DynamoEvidence:
    """Evidence in a DynamoDB table; items expire `retention` after the task stopped (the TTL attribute).

    DynamoDB deletes expired items in the background, sometimes days later: reads skip them.
    """

    aws: AwsCaller
    table: str
    retention: timedelta
    now: Callable[[], datetime]

    def record(self, service_key: ServiceKey, task: Mapping[str, Any]) -> None:
        at = as_datetime(task.get("stoppedAt"))  # only final evidence: a stopping task is recorded once stopped
        arn = text(task.get("taskArn"))
        if at is None or not arn or not is_stopped(task):
            return
        self.aws.call(
            "dynamodb",
            "PutItem",
            {
                "TableName": self.table,
                "Item": {
                    PARTITION_KEY: {"S": service_key.arn},
                    SORT_KEY: {"S": f"{iso(at)}#{arn}"},
                    "body": {"S": json.dumps(compact(task), separators=(",", ":"))},
                    TTL_ATTRIBUTE: {"N": str(int((at + self.retention).timestamp()))},
                },
            },
        )

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :s AND #t >= :since",
            "ExpressionAttributeNames": {"#s": PARTITION_KEY, "#t": SORT_KEY},
            "ExpressionAttributeValues": {":s": {"S": service_key.arn}, ":since": {"S": iso(since)}},
            "ScanIndexForward": False,
        }
        now = self.now().timestamp()
        newest: dict[str, dict[str, Any]] = {}
        while True:
            page = self.aws.call("dynamodb", "Query", request)
            for item in page.get("Items") or []:
                if float(item.get(TTL_ATTRIBUTE, {}).get("N", "inf")) <= now:
                    continue
                task = json.loads(item["body"]["S"])
                arn = text(task.get("taskArn"))
                if arn not in newest or (integer(task.get("version")) or 0) > (
                    integer(newest[arn].get("version")) or 0
                ):
                    newest[arn] = task
            if not page.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(newest.values(), key=lambda t: stopped_at(t) or since, reverse=True)

    def allows(self, api: str, operation: str, params: Mapping[str, Any]) -> bool:
        """For the gateway's `dry_run_allows`: writing evidence to this table changes nothing in ECS, and
        Query is a read (the gateway knows reads by their Describe/List/Get prefixes only)."""
        return api == "dynamodb" and operation in ("PutItem", "Query") and params.get("TableName") == self.table


class _Log(Protocol):
    def warning(self, event: str, **facts: Any) -> Any: ...  # noqa: ANN401 - structlog's return


@dataclass
class LayeredEvidence:
    """Memory in front of a durable store (see the module's docstring)."""

    memory: MemoryEvidence
    durable: EvidenceStore
    started_at: datetime  # memory knows nothing that stopped before this
    log: _Log

    def record(self, service_key: ServiceKey, task: Mapping[str, Any]) -> None:
        self.memory.record(service_key, task)
        try:
            self.durable.record(service_key, task)
        except Exception as error:  # noqa: BLE001 - the memory copy is kept; the next record may succeed
            self.log.warning(
                "evidence_write_failed", service=str(service_key), error=f"{type(error).__name__}: {error}"
            )

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]:
        in_memory = self.memory.recent(service_key, since)
        dropped = self.memory.complete_since(service_key)
        covered_from = max(self.started_at, dropped) if dropped is not None else self.started_at
        if since >= covered_from:
            return in_memory
        try:
            stored = self.durable.recent(service_key, since)
        except Exception as error:  # noqa: BLE001 - memory's part of the window is still an answer
            self.log.warning("evidence_read_failed", service=str(service_key), error=f"{type(error).__name__}: {error}")
            return in_memory
        merged = {text(t.get("taskArn")): t for t in stored}
        merged.update({text(t.get("taskArn")): t for t in in_memory})
        return sorted(merged.values(), key=lambda t: stopped_at(t) or since, reverse=True)


@dataclass
class ReadOnlyEvidence:
    """A durable store read and never written: in dry-run the agent writes nothing, but what an enforcing
    agent kept still answers "what happened overnight"."""

    durable: EvidenceStore

    def record(self, service_key: ServiceKey, task: Mapping[str, Any]) -> None:  # noqa: ARG002 - writes nothing
        return None

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]:
        return self.durable.recent(service_key, since)


def evidence_store(
    settings: Settings, *, aws: AwsCaller, now: Callable[[], datetime], log: _Log, read_only: bool = False
) -> MemoryEvidence | LayeredEvidence:
    """Memory alone, or memory in front of the table `ECS_MEDIC_EVIDENCE_TABLE` names (read, never written,
    when `read_only`: dry-run)."""
    memory = MemoryEvidence()
    if not settings.evidence_table:
        return memory
    table: EvidenceStore = DynamoEvidence(
        aws, settings.evidence_table, timedelta(seconds=settings.evidence_retention_seconds), now
    )
    if read_only:
        table = ReadOnlyEvidence(table)
    return LayeredEvidence(memory, table, now(), log)
