"""The loop: when to reconcile what. Passes never sleep; the loop waits between them.

Without an events queue (the default), every `poll_interval_seconds` one full pass re-reads the
whole fleet (`Loop`), as simply as it sounds; an event read from a queue only wakes it early.

With an events queue, a work queue keyed by service drives reconciliation, as controller-runtime's
does (`Worker`, one per account and Region, and `EventFeed`):

- ECS's events add the key of the service they are about. A stopped task's event is kept as evidence
  and diagnosed from the event itself: its service is read with one DescribeServices batch, and no
  ListTasks or DescribeTasks.
- A full resync every `resync_interval_seconds` lists every service and adds its key at low priority,
  behind whatever events queue; the first one, at start, is a full pass.
- Keys are handed out in batches of up to 10 of one cluster (one DescribeServices); a key that
  failed comes back after its own backoff (1 s doubling up to 5 minutes); a service not yet settled
  (not steady, a change in flight or being verified, an approval awaited) comes back after
  `poll_interval_seconds`.
- A message is deleted only once its key was handled; a message about another replica's shard is
  handed back to the queue at once.
- When nothing came for `poll_interval_seconds`, a heartbeat reads the clusters (one
  DescribeClusters), so that health says whether the agent can still see ECS.

SIGTERM sets `stop`: the action in flight finishes, no new one starts, and the loop returns. An
exception in a pass (out of file descriptors, a bug) is logged, counted as an `error` pass and never
fatal: a crash loop would leave every service unwatched. Only passes that saw the fleet keep the agent
healthy (`agent.http.Health`); with several accounts and Regions, a pass that saw any of them does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.arns import ServiceKey, service_key
from agent.diagnose.tasks import is_stopped
from agent.events import EventIntake, TaskStateChange, diagnose_stopped_task
from agent.observe import DESCRIBE_SERVICES_BATCH
from agent.workqueue import LOW, WorkQueue

if TYPE_CHECKING:
    from agent.evidence import EvidenceStore
    from agent.http import Health
    from agent.metrics import Metrics
    from agent.policy.watch import PolicySource
    from agent.reconciler import Reconciler
    from agent.telemetry import PassReport

MAX_POLL_SECONDS = 5  # a long poll of the events queue: SIGTERM is honoured within seconds
SQS_BATCH = 10  # ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch take at most 10


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


class TargetsHealth:
    """One `Health` fed by several accounts and Regions: a pass failed only when every target's latest
    did (an account whose role is refused must not get the agent restarted: the others still work)."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._latest: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def pass_finished(self, result: str = "ok", problem: str = "", *, target: str = "") -> None:
        with self._lock:
            self._latest[target] = (result, problem)
            results = list(self._latest.values())
        seeing = [r for r in results if r[0] != "error"]
        if not seeing:
            self._health.pass_finished("error", results[-1][1])
        elif len(seeing) < len(results) or any(r[0] == "partial" for r in seeing):
            failed = next((p for r, p in results if r != "ok" and p), "")
            self._health.pass_finished("partial", failed)
        else:
            self._health.pass_finished("ok", "")


def _seen(metrics: Metrics, account: str, region: str, now: datetime, *, seen: bool) -> None:
    """`ecs_medic_target_up` and `ecs_medic_target_last_pass_timestamp_seconds` of one account and Region."""
    if not account or not region:
        return
    metrics.target_up.labels(account, region).set(1 if seen else 0)
    if seen:
        metrics.target_last_pass.labels(account, region).set(now.timestamp())


def _report_pass(health: Health | TargetsHealth | None, report: PassReport, target: str) -> None:
    if health is None:
        return
    first = report.errors[0] if report.errors else None
    problem = f"{first.operation}: {first.message}" if first is not None else ""
    if isinstance(health, TargetsHealth):
        health.pass_finished(report.result, problem, target=target)
    else:
        health.pass_finished(report.result, problem)


def _report_error(health: Health | TargetsHealth | None, problem: str, target: str) -> None:
    if isinstance(health, TargetsHealth):
        health.pass_finished("error", problem, target=target)
    elif health is not None:
        health.pass_finished("error", problem)


@dataclass
class Loop:
    """The default: a full pass every `interval_seconds` (earlier when `wake` says something happened)."""

    reconciler: Reconciler
    policies: PolicySource | None  # None: another loop reloads them
    health: Health | TargetsHealth
    interval_seconds: float
    log: Any
    now: Callable[[], datetime] = utc_now
    wake: Callable[[float, threading.Event], bool] | None = None  # waits for an event; True when one came
    before_pass: Callable[[], object] | None = None  # e.g. renew the leader lease
    target: str = ""  # `<account>/<region>` with several targets
    account: str = ""
    region: str = ""

    def run_once(self, stop: threading.Event) -> PassReport | None:
        now = self.now()
        try:
            if self.policies is not None:
                reload_policies(self.policies, self.log)
            if self.before_pass is not None:
                self.before_pass()
            report = self.reconciler.run_pass(now, stop)
        except Exception as error:  # out of descriptors, a bug: counted, logged, and the next pass tries again
            self.log.exception("reconcile_failed")
            self.reconciler.metrics.passes.labels("error").inc()
            _report_error(self.health, f"{type(error).__name__}: {error}", self.target)
            _seen(self.reconciler.metrics, self.account, self.region, now, seen=False)
            return None
        _report_pass(self.health, report, self.target)
        _seen(self.reconciler.metrics, self.account, self.region, now, seen=report.saw_fleet)
        return report

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once(stop)
            if self.wake is not None:
                self.wake(self.interval_seconds, stop)
            else:
                stop.wait(self.interval_seconds)


def reload_policies(policies: PolicySource, log: Any) -> None:  # noqa: ANN401 - a structlog logger
    """Read the policy files again when they changed; a bad edit keeps the last good set."""
    reload = policies.refresh()
    if reload.error is not None:
        log.error("policies_rejected", errors=[str(e) for e in reload.error.errors], kept="last good set")
    elif reload.changed:
        current = policies.policies()
        log.info("policies_loaded", policies=[p.name for p in current.policies], files=len(current.files))


# --- event mode ------------------------------------------------------------------------------------------


def _cluster_of(key: ServiceKey) -> tuple[str, str, str]:
    return (key.account, key.region, key.cluster)


@dataclass
class Worker:
    """One account and Region in event mode: its work queue, drained in batches of one cluster.

    Single-threaded by design (`run` is its thread): a service is never reconciled twice at once, since
    the queue never hands a key to two workers and each target has one worker.
    """

    reconciler: Reconciler
    account: str
    region: str
    log: Any
    now: Callable[[], datetime] = utc_now
    settle_seconds: float = 30.0  # an unsettled service is looked at again this soon
    resync_seconds: float = 600.0
    health: Health | TargetsHealth | None = None
    feed: EventFeed | None = None  # the events queue: receipts to delete once their key is handled
    policies: PolicySource | None = None
    queue: WorkQueue[ServiceKey] | None = None  # default: one on the clock of `now`
    _from_events: set[ServiceKey] = field(default_factory=set)
    _next_resync: datetime | None = None
    _last_seen: datetime | None = None  # when a pass or a heartbeat last saw the fleet
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.queue is None:
            self.queue = WorkQueue(clock=lambda: self.now().timestamp())

    @property
    def keys(self) -> WorkQueue[ServiceKey]:
        assert self.queue is not None  # noqa: S101 - set at construction
        return self.queue

    @property
    def target(self) -> str:
        return f"{self.account}/{self.region}"

    def mark(self, key: ServiceKey, *, stopped_task: bool = False) -> None:
        """An event is about `key` (a stopped task's event carried the task: no need to list it again)."""
        if stopped_task:
            with self._lock:
                self._from_events.add(key)
        self.keys.add(key)

    # --- resync --------------------------------------------------------------------------------------------

    def start(self, stop: threading.Event) -> PassReport | None:
        """The first resync: one full pass, so that the storm guard and the evidence start from the
        whole fleet; then the next resync is due in `resync_seconds`."""
        now = self.now()
        self._next_resync = now + timedelta(seconds=self.resync_seconds)
        try:
            report = self.reconciler.run_pass(now, stop)
        except Exception as error:
            self.log.exception("reconcile_failed")
            self.reconciler.metrics.passes.labels("error").inc()
            _report_error(self.health, f"{type(error).__name__}: {error}", self.target)
            self._next_resync = now + timedelta(seconds=self.settle_seconds)
            return None
        _report_pass(self.health, report, self.target)
        _seen(self.reconciler.metrics, self.account, self.region, now, seen=report.saw_fleet)
        self._after(report, ())
        if report.saw_fleet:
            self._last_seen = now
        return report

    def resync(self, now: datetime | None = None) -> int:
        """Every service's key, at low priority (events go first); returns how many were queued."""
        now = now or self.now()
        self._next_resync = now + timedelta(seconds=self.resync_seconds)
        try:
            listing = self.reconciler.list_services(now)
        except Exception as error:
            self.log.exception("resync_failed")
            _report_error(self.health, f"{type(error).__name__}: {error}", self.target)
            return 0
        for problem in listing.errors:
            problem.log(self.log)
        if listing.errors and not listing.services:
            first = listing.errors[0]
            self.reconciler.metrics.passes.labels("error").inc()
            _report_error(self.health, f"{first.operation}: {first.message}", self.target)
            self._next_resync = now + timedelta(seconds=self.settle_seconds)  # try again soon
        queued = 0
        for cluster, arns in listing.services.items():
            for arn in arns:
                key = service_key(arn, cluster=cluster)
                if key is not None:
                    self.keys.add(key, priority=LOW)
                    queued += 1
        self.log.info("resync_queued", target=self.target, services=queued, clusters=len(listing.services))
        return queued

    def resync_due(self, now: datetime) -> bool:
        return self._next_resync is None or now >= self._next_resync

    # --- work ------------------------------------------------------------------------------------------------

    def work_once(self, stop: threading.Event | None = None, *, timeout: float = 0) -> int:
        """Reconcile one batch of ready keys of one cluster (waiting up to `timeout` seconds for one);
        returns how many keys it handled."""
        keys = self.keys.get_batch(DESCRIBE_SERVICES_BATCH, group=_cluster_of, timeout=timeout)
        if not keys:
            return 0
        claims = [self.feed.intake.claim(key) for key in keys] if self.feed is not None else []
        with self._lock:
            from_events = {k.service for k in keys if k in self._from_events}
            self._from_events.difference_update(keys)
        now = self.now()
        try:
            if self.policies is not None:
                reload_policies(self.policies, self.log)
            report = self.reconciler.run_batch(
                keys[0].cluster, [k.service for k in keys], now, stop, stopped_from_events=frozenset(from_events)
            )
        except Exception as error:
            self.log.exception("reconcile_failed")
            self.reconciler.metrics.passes.labels("error").inc()
            _report_error(self.health, f"{type(error).__name__}: {error}", self.target)
            report = None
        done = self._after(report, keys) if report is not None else set()
        for key in keys:
            if key not in done:
                delay = self.keys.add_rate_limited(key)
                self.log.info("service_retry", target=self.target, service=str(key), after_seconds=delay)
                if key.service in from_events:
                    with self._lock:
                        self._from_events.add(key)
            self.keys.done(key)
        if self.feed is not None:
            self.feed.settle(claims, done)
        if report is not None:
            _report_pass(self.health, report, self.target)
            _seen(self.reconciler.metrics, self.account, self.region, now, seen=report.saw_fleet)
            if report.saw_fleet:
                self._last_seen = now
        return len(keys)

    def _after(self, report: PassReport, keys: Iterable[ServiceKey]) -> set[ServiceKey]:
        """The keys handled (reconciled, or gone); unsettled services come back after `settle_seconds`."""
        by_name = {(k.cluster, k.service): k for k in keys}
        done = {by_name[name] for name in (*report.reconciled, *report.gone) if name in by_name}
        for cluster, service in report.unsettled:
            key = by_name.get((cluster, service)) or ServiceKey(self.account, self.region, cluster, service)
            self.keys.add_after(key, self.settle_seconds)
        for key in done:
            self.keys.forget(key)
        return done

    def heartbeat(self, now: datetime | None = None) -> bool:
        """When nothing was reconciled for `settle_seconds`: can the agent still see ECS? One
        DescribeClusters (the clusters' pause tags come fresh with it)."""
        now = now or self.now()
        if self._last_seen is not None and (now - self._last_seen).total_seconds() < self.settle_seconds:
            return True
        seen, problem = self.reconciler.heartbeat(now)
        _seen(self.reconciler.metrics, self.account, self.region, now, seen=seen)
        if seen:
            self._last_seen = now
            if self.health is not None:
                if isinstance(self.health, TargetsHealth):
                    self.health.pass_finished("ok", target=self.target)
                else:
                    self.health.pass_finished("ok")
        else:
            _report_error(self.health, problem, self.target)
        return seen

    def run(self, stop: threading.Event) -> None:
        self.start(stop)
        while not stop.is_set():
            now = self.now()
            if self.resync_due(now):
                self.resync(now)
            if self.work_once(stop, timeout=min(1.0, self.settle_seconds)) == 0:
                self.heartbeat()
        self.keys.shutdown()


@dataclass
class EventFeed:
    """ECS's events from the SQS queue: a stopped task is kept as evidence and its finding made from the
    event; each key goes to the worker of its account and Region; a message is deleted once its key was
    handled (in enforce mode: deleting is a write), and one about another replica's shard goes back to
    the queue at once."""

    aws: Any  # agent.aws.AwsGateway of the agent's own account, where the queue lives
    queue_url: str
    workers: Mapping[tuple[str, str], Worker]
    log: Any
    delete: bool
    evidence: EvidenceStore | None = None
    intake: EventIntake = field(default_factory=EventIntake)
    accepts: Callable[[ServiceKey], bool] | None = None  # the services this replica reconciles
    wait_seconds: int = MAX_POLL_SECONDS

    def poll(self, stop: threading.Event | None = None) -> int:
        """One ReceiveMessage (a long poll of up to `wait_seconds`); returns the messages it brought."""
        try:
            response = self.aws.call(
                "sqs",
                "ReceiveMessage",
                {
                    "QueueUrl": self.queue_url,
                    "MaxNumberOfMessages": SQS_BATCH,
                    "WaitTimeSeconds": self.wait_seconds,
                },
            )
        except Exception as error:  # noqa: BLE001 - the resync still finds everything; try again shortly
            self.log.warning("events_queue_failed", error=f"{type(error).__name__}: {error}")
            if stop is not None:
                stop.wait(self.wait_seconds)
            return 0
        messages = response.get("Messages") or []
        if messages:
            self.take(messages)
        return len(messages)

    def take(self, messages: list[dict[str, Any]]) -> None:
        batch = self.intake.receive(messages, accepts=self.accepts)
        for rejected in batch.rejected:
            self.log.warning("event_rejected", reason=rejected.reason)
        for event in batch.events:
            if isinstance(event, TaskStateChange) and self.evidence is not None and is_stopped(event.task):
                self._keep(event)
        stopped = {
            e.key
            for e in batch.events
            if isinstance(e, TaskStateChange) and (finding := diagnose_stopped_task(e)) is not None and finding.failure
        }
        unknown: list[ServiceKey] = []
        for key in batch.keys:
            worker = self.workers.get((key.account, key.region))
            if worker is None:
                unknown.append(key)
                continue
            worker.mark(key, stopped_task=key in stopped)
        for key in unknown:  # not an account and Region the agent watches: nobody will handle it
            self.acknowledge(self.intake.finish(self.intake.claim(key)))
            self.log.info("event_not_watched", service=str(key))
        self.acknowledge(batch.ack_now)
        self.hand_back(batch.not_ours)
        self.log.info(
            "events_received",
            messages=len(messages),
            events=len(batch.events),
            services=len(batch.keys),
            not_ours=len(batch.not_ours),
        )

    def _keep(self, event: TaskStateChange) -> None:
        assert self.evidence is not None  # noqa: S101 - checked by the caller
        try:
            self.evidence.record(event.key, event.task)
        except Exception as error:  # noqa: BLE001 - the resync reads the task from ECS within the hour
            self.log.warning("evidence_write_failed", service=str(event.key), error=f"{type(error).__name__}: {error}")

    def settle(self, claims: Iterable[Any], done: set[ServiceKey]) -> None:
        """After a batch: the messages of handled keys are deleted, the others wait for the next try."""
        receipts: list[str] = []
        for claim in claims:
            if claim.key in done:
                receipts += self.intake.finish(claim)
            else:
                self.intake.release(claim)
        self.acknowledge(receipts)

    def acknowledge(self, receipts: Iterable[str]) -> None:
        """Delete handled messages (enforce mode only: in dry-run the agent writes nothing, and SQS makes
        them visible again, where the intake knows them as duplicates)."""
        self._batched("DeleteMessageBatch", [r for r in receipts if r], {})

    def hand_back(self, receipts: Iterable[str]) -> None:
        """Messages for another replica's shard: visible again at once, for their owner to receive."""
        self._batched("ChangeMessageVisibilityBatch", [r for r in receipts if r], {"VisibilityTimeout": 0})

    def _batched(self, operation: str, receipts: list[str], extra: dict[str, Any]) -> None:
        if not self.delete or not receipts:
            return
        for start in range(0, len(receipts), SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": r, **extra} for i, r in enumerate(receipts[start : start + SQS_BATCH])
            ]
            try:
                self.aws.call("sqs", operation, {"QueueUrl": self.queue_url, "Entries": entries}, idempotent=True)
            except Exception as error:  # noqa: BLE001 - SQS delivers them again; the intake knows them
                self.log.warning("events_queue_failed", operation=operation, error=f"{type(error).__name__}: {error}")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll(stop)
