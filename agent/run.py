"""`ecs-medic run`: what the long-running agent is made of, and its threads.

- **Targets.** One gateway and one reconciler per account and Region (`agent.aws.accounts`): the
  member roles of `ECS_MEDIC_ASSUME_ROLE_ARNS` times `ECS_MEDIC_REGIONS`, or the agent's own account
  and Region. Each gateway consults the API budget's scope of its account and Region, divided among
  the replicas. Each target has a thread of its own, so one account's AccessDenied, throttling or
  timeout never holds up another; health counts a pass as seen when any target saw its fleet, and
  `ecs_medic_target_up{account,region}` says which did not.
- **Shards.** In enforce mode with a lease table, the replica's shard leases (`agent.lease`): one
  shard is the leader lease of old. Every reconciler writes to a service only under its shard's lease.
- **Evidence.** One store for every target (keys carry the account and Region): memory, in front of
  the DynamoDB table when one is set (read-only in dry-run).
- **Loops.** Without an events queue, a full pass per target every poll interval (`agent.loop.Loop`);
  with one, a work queue per target and one reader of the queue (`agent.loop.Worker`, `EventFeed`).

The agent's own account keeps what is the agent's: the events queue, the lease and evidence tables,
the notification topic, the approval key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.aws import AwsGateway
from agent.aws.accounts import build_targets
from agent.events import EventIntake
from agent.evidence import evidence_store
from agent.journal import Journal
from agent.lease import DEFAULT_MARGIN_SECONDS, ShardLeases
from agent.loop import EventFeed, Loop, TargetsHealth, Worker
from agent.reconciler import Reconciler, canonical_arn
from agent.settings import Mode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent.arns import ServiceKey
    from agent.aws.budget import ApiBudget
    from agent.http import Health
    from agent.metrics import Metrics
    from agent.policy.watch import PolicySource
    from agent.settings import Settings

JOIN_SECONDS = 110.0  # a thread's action in flight takes at most 90 s; the container gets 120 s to stop


def _now() -> datetime:
    return datetime.now(tz=UTC)


def lease_ttl(settings: Settings) -> float:
    """Long enough that a renewal every third of it survives a slow pass; the lease is also renewed in the
    background while acting, and checked before every write (see agent/lease.py)."""
    return max(3 * settings.poll_interval_seconds, DEFAULT_MARGIN_SECONDS + 2 * settings.max_action_seconds)


class SharedJournal(Journal):
    """The journal of every target's changes (the hourly cap is the agent's, not an account's), safe to
    use from every target's thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def record(self, at: datetime, service_arn: str, action: str, proposal_id: str) -> None:
        with self._lock:
            super().record(at, service_arn, action, proposal_id)

    def seed(self, states: Iterable[tuple[str, Any]], now: datetime) -> None:
        with self._lock:
            super().seed(states, now)

    def count_since(self, since: datetime) -> int:
        with self._lock:
            return super().count_since(since)

    def backstop(self, service_arn: str, state: Any) -> Any:  # noqa: ANN401 - agent.state.ServiceState
        with self._lock:
            return super().backstop(service_arn, state)


@dataclass(frozen=True, slots=True)
class TargetAgent:
    account: str
    region: str
    reconciler: Reconciler

    @property
    def label(self) -> str:
        return f"{self.account}/{self.region}"


@dataclass
class Agent:
    """Everything `run` starts, ready to run (`run` below) until `stop`."""

    settings: Settings
    log: Any
    metrics: Metrics
    targets: list[TargetAgent]
    leases: ShardLeases | None = None
    feed: EventFeed | None = None
    workers: list[Worker] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)

    @property
    def proposals(self) -> list[dict[str, Any]]:
        return [p.to_dict() for t in self.targets for p in t.reconciler.latest]

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return [v.to_dict() for t in self.targets for v in t.reconciler.recent_verdicts]

    def run(self, stop: threading.Event) -> None:
        """Every thread, until `stop`; then each finishes what it is doing and the shard leases go back."""
        threads: list[threading.Thread] = []
        if self.leases is not None:
            threads.append(self.leases.keep_renewing(stop))
        bodies: list[tuple[str, Callable[[threading.Event], None]]] = []
        if self.feed is not None:
            bodies.append(("events", self.feed.run))
        bodies += [(f"worker-{w.target}", w.run) for w in self.workers]
        bodies += [(f"loop-{loop.target or 'fleet'}", loop.run) for loop in self.loops]
        if len(bodies) == 1:
            bodies[0][1](stop)  # the simple default: one loop, in this thread
        else:
            for name, body in bodies:
                thread = threading.Thread(target=body, args=(stop,), name=name, daemon=True)
                thread.start()
                threads.append(thread)
            stop.wait()
            for thread in threads:
                thread.join(JOIN_SECONDS)
        if self.leases is not None:
            self.leases.release()


def build_agent(
    settings: Settings,
    *,
    gateway: AwsGateway,
    reconciler: Reconciler,
    policies: PolicySource,
    metrics: Metrics,
    log: Any,  # noqa: ANN401 - a structlog logger
    health: Health,
    budget: ApiBudget,
    dry_run_allows: Callable[[str, str, Any], bool] | None = None,
    now: Callable[[], datetime] = _now,
) -> Agent:
    """The agent for these settings. `gateway` and `reconciler` are the agent's own account's (built and
    checked by the command); with member roles or several Regions, each target gets its own."""
    enforce = settings.mode is Mode.ENFORCE
    leases = None
    if settings.lease_table and enforce:
        leases = ShardLeases(gateway, settings.lease_table, settings.shards, lease_ttl(settings), now, log)
        leases.renew()
    evidence = evidence_store(settings, aws=gateway, now=now, log=log, read_only=not enforce)
    targets = _targets(
        settings,
        gateway=gateway,
        reconciler=reconciler,
        policies=policies,
        metrics=metrics,
        log=log,
        budget=budget,
        dry_run_allows=dry_run_allows,
    )
    for target in targets:
        target.reconciler.ownership = leases
        target.reconciler.evidence = evidence
        if leases is not None:
            target.reconciler.holder = leases.holder
    agent = Agent(settings, log, metrics, targets, leases)
    several = len(targets) > 1
    watch: Health | TargetsHealth = TargetsHealth(health) if several else health
    if settings.events_queue_url:
        intake = EventIntake()
        agent.workers = [
            Worker(
                t.reconciler,
                t.account,
                t.region,
                log.bind(account=t.account, region=t.region) if several else log,
                now=now,
                settle_seconds=settings.poll_interval_seconds,
                resync_seconds=settings.resync_interval_seconds,
                health=watch,
                policies=policies if index == 0 else None,
            )
            for index, t in enumerate(targets)
        ]
        agent.feed = EventFeed(
            gateway,
            settings.events_queue_url,
            {(w.account, w.region): w for w in agent.workers},
            log,
            delete=enforce,
            evidence=evidence,
            intake=intake,
            accepts=_accepts(leases),
        )
        for worker in agent.workers:
            worker.feed = agent.feed
        workers = agent.workers
        metrics.queue_depth.set_function(lambda: sum(len(w.keys) for w in workers))
    else:
        agent.loops = [
            Loop(
                t.reconciler,
                policies if index == 0 else None,
                watch,
                settings.poll_interval_seconds,
                log,
                now=now,
                target=t.label if several else "",
                account=t.account,
                region=t.region,
            )
            for index, t in enumerate(targets)
        ]
    return agent


def _accepts(leases: ShardLeases | None) -> Callable[[ServiceKey], bool] | None:
    """Event keys this replica reconciles: with several shards, those of the shards it holds."""
    if leases is None or leases.shards <= 1:
        return None
    held = leases
    return lambda key: held.holds(held.shard_of(canonical_arn(key.arn, key.cluster)))


def _targets(
    settings: Settings,
    *,
    gateway: AwsGateway,
    reconciler: Reconciler,
    policies: PolicySource,
    metrics: Metrics,
    log: Any,  # noqa: ANN401 - a structlog logger
    budget: ApiBudget,
    dry_run_allows: Callable[[str, str, Any], bool] | None,
) -> list[TargetAgent]:
    own = account_of(reconciler.identity)
    if not settings.assume_role_arns and not settings.regions:
        return [TargetAgent(own or "", gateway.region or "", reconciler)]
    journal = SharedJournal()
    found = []
    for target in build_targets(settings, gateway.session):
        target_gateway = AwsGateway(
            dry_run=settings.mode is Mode.DRY_RUN,
            metrics=metrics,
            session=target.session,
            dry_run_allows=dry_run_allows,
            budget=budget.scope(target.account, target.region),
        )
        target_reconciler = Reconciler(
            aws=target_gateway,
            settings=settings,
            policies=policies.policies,
            metrics=metrics,
            log=log.bind(account=target.account, region=target.region),
            identity=reconciler.identity,
            journal=journal,
            ledger=reconciler.ledger,  # one notifier for every target, one ledger of what it delivered
        )
        found.append(TargetAgent(target.account, target.region, target_reconciler))
    return found


def account_of(identity_arn: str | None) -> str | None:
    """`arn:aws:sts::123456789012:assumed-role/...` -> `123456789012`."""
    parts = (identity_arn or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None
