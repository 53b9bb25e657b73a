"""One reconcile pass: observe -> diagnose -> recover -> decide -> act -> remember -> report.

The pass is a function of the world and `now`; it never sleeps (the loop decides when to come back).
Every mode reads the same state store; only an enforcing leader writes it, and only for services it
manages. A change is made exactly once: its intent is written before its first call, every call is
checked before it is sent again, and an intent found later (a restart, a new leader) is finished or
cleaned up before anything else is decided for that service. One service's error is that service's
error: it is logged, counted and tried again next pass; the others go on.

Two kinds of pass share every step after the read: `run_pass` reads the whole fleet (the full
resync), `run_batch` reads up to 10 services of one cluster that the work queue handed out (targeted
reads). Both go through `_reconcile`: assess, recover, the storm guard, then per service decide, act,
announce and remember. A batch sees only its services, so what the storm guard and the gauges need of
the rest of the cluster comes from the census: each service's latest assessment, failing or not.

Who may write a service is its tenure: with one lease (or none) the replica's own; with sharded
replicas (`ownership`), the lease of the service's shard, its guard before every write and its
version as the fencing token. A service of a shard this replica does not hold is decided as a
standby: proposed, never written.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from agent import announce, approvals
from agent.act import ChangeFailedError, Executor, Progress, for_intent, record
from agent.actions import REGISTRY
from agent.arns import family_revision, region_of, service_key
from agent.census import Census
from agent.decide import (
    Assessment,
    Budget,
    Decision,
    Fleet,
    Kind,
    Limits,
    Outcome,
    Proposal,
    applied,
    decide_service,
    storm_clusters,
)
from agent.diagnose import diagnose_service
from agent.diagnose.risks import risks_of
from agent.errors import LeaseLostError
from agent.journal import Journal
from agent.model import ServiceView, Subject
from agent.notify.dispatch import MemoryLedger
from agent.observe import Listing, ObserveError, Observer, Snapshot
from agent.settings import Mode, Settings
from agent.state import EMPTY, MAX_CHANGE_SECONDS, Intent, Problem, ServiceState
from agent.store import Memory, StateNotSavedError, Stored, TagStore
from agent.telemetry import PassReport, Reporter, VerdictReport, verdict_report

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from agent.aws.gateway import AwsGateway
    from agent.evidence import EvidenceStore
    from agent.metrics import Metrics
    from agent.notify.events import Notification
    from agent.policy.loader import PolicySet
    from agent.state import Change


def essential_flags(view: ServiceView) -> dict[str, dict[str, bool]]:
    """family:revision -> {container: essential} for the task definitions read for a service."""
    return {
        revision: {
            str(c.get("name")): bool(c.get("essential", True))
            for c in definition.get("containerDefinitions") or []
            if isinstance(c, dict)
        }
        for revision, definition in view.task_definitions.items()
    }


def assess(
    view: ServiceView,
    state: ServiceState,
    region: str | None,
    approval: approvals.Approval | None = None,
    problems: tuple[Problem, ...] = (),
) -> Assessment:
    """Diagnose one observed service: its findings, its prevention risks, with what the agent remembers."""
    findings = diagnose_service(view.description, view.stopped_tasks, essential=essential_flags(view))
    subject = Subject(cluster=view.cluster, service=view.name, region=region, task_definition=view.task_definition)
    risks = risks_of(view.description, subject, view.task_definitions.get(view.task_definition))
    return Assessment(view, tuple(findings), tuple(risks), state, region, approval, problems)


APPROVALS_REMEMBERED = 1_000  # signatures already checked, by service and approval


def new_token() -> str:
    return uuid.uuid4().hex[:16]


def _no_guard() -> None:
    return None


class Ownership(Protocol):
    """Sharded replicas (`agent.lease.ShardLeases`): which shard a service is in, and this replica's
    hold on each shard."""

    holder: str

    @property
    def shards(self) -> int: ...

    def shard_of(self, service_arn: str) -> int: ...

    def holds(self, shard: int) -> bool: ...

    def guard(self, shard: int) -> None: ...

    def fence(self, shard: int) -> int: ...

    def owned(self) -> frozenset[int]: ...


@dataclass(frozen=True, slots=True)
class Tenure:
    """Who may write one service now, and how: a standby proposes only; `guard` runs before every write
    and raises when the lease behind it is gone; `fence` is that lease's version (the fencing token)."""

    standby: bool
    guard: Callable[[], None]
    fence: Callable[[], int]
    holder: str


_RECORDED_TASKS = 50_000  # task versions already put in the evidence store (a bound, oldest forgotten)


@dataclass
class Reconciler:
    """Runs passes. Holds the deltas it may not write yet, its journal of changes, and what it reported."""

    aws: AwsGateway
    settings: Settings
    policies: Callable[[], PolicySet]
    metrics: Metrics
    log: Any
    observer: Observer | None = None
    clock: Callable[[], float] = time.monotonic
    leader: Callable[[], bool] = lambda: True
    guard: Callable[[], None] = _no_guard  # raises when this replica may not write (the lease)
    fence: Callable[[], int] = lambda: 0  # the lease's version: the fencing token of this replica's tenure
    holder: str = field(default_factory=new_token)
    identity: str | None = None  # the agent's own AWS identity (it may not approve its own proposals)
    ownership: Ownership | None = None  # sharded replicas: the shard leases (else `leader`, `guard`, `fence`)
    evidence: EvidenceStore | None = None  # stopped tasks kept beyond ECS's hour (events and passes)
    memory: Memory = field(default_factory=Memory)
    journal: Journal = field(default_factory=Journal)
    census: Census = field(default_factory=Census)
    latest: tuple[Proposal, ...] = ()
    recent_verdicts: deque[VerdictReport] = field(default_factory=partial(deque, maxlen=100))
    notifier: Any = None  # agent.notify.Notifier, built with `ledger`: submit() never blocks and never raises
    ledger: MemoryLedger = field(default_factory=MemoryLedger)  # keys whose delivery settled, until recorded
    _paused_before: set[str] = field(default_factory=set)
    _announced: dict[str, set[str]] = field(default_factory=dict)  # arn -> keys submitted, not yet recorded
    _last: dict[str, tuple[ServiceView, ServiceState]] = field(default_factory=dict)
    _proposals: dict[str, Proposal] = field(default_factory=dict)  # service ARN -> its latest proposal
    _approvals_checked: dict[tuple[str, str], bool] = field(default_factory=dict)
    _seeded: set[str] = field(default_factory=set)  # services whose recorded changes the journal holds
    _recorded: OrderedDict[tuple[str, int], None] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self._observer = self.observer or Observer(self.aws, clusters=self.settings.clusters)
        self.store = TagStore(self.aws)
        self.reporter = Reporter(self.metrics, self.log, self.settings.mode.value)

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            mode=s.mode,
            max_actions_per_hour=s.max_actions_per_hour,
            storm_fraction=s.storm_fraction,
            storm_min_failing=s.storm_min_failing,
            paused=s.paused,
            managed_tag=s.managed_tag,
            verify_timeout_seconds=s.verify_timeout_seconds,
            standby=not self.acting(),
        )

    def acting(self) -> bool:
        """Whether this replica acts anywhere: it holds the lease, or at least one shard's."""
        if self.ownership is not None:
            return bool(self.ownership.owned())
        return self.leader()

    def owns(self, service_arn: str, cluster: str) -> bool:
        """Whether the service is this replica's to reconcile: with several shards, only those whose lease
        it holds (the others' owners watch them); otherwise every service (a standby proposes)."""
        ownership = self.ownership
        if ownership is None or ownership.shards <= 1:
            return True
        return ownership.holds(ownership.shard_of(canonical_arn(service_arn, cluster)))

    def tenure(self, view: ServiceView) -> Tenure:
        """Who may write this service now: the shard's lease with sharded replicas, else the replica's."""
        ownership = self.ownership
        if ownership is None:
            return Tenure(not self.leader(), self.guard, self.fence, self.holder)
        shard = ownership.shard_of(canonical_arn(view.arn, view.cluster))
        return Tenure(
            not ownership.holds(shard),
            lambda: ownership.guard(shard),
            lambda: ownership.fence(shard),
            ownership.holder,
        )

    def _writes(self, limits: Limits) -> bool:
        """Whether this pass may write anything at all (state included)."""
        return limits.mode is Mode.ENFORCE and not limits.standby

    def _managed(self, view: ServiceView) -> bool:
        return view.tags.get(self.settings.managed_tag) == "true"

    # --- the passes ----------------------------------------------------------------------------------------

    def run_pass(self, now: datetime, stop: threading.Event | None = None) -> PassReport:
        """The full resync: every selected service, read and reconciled."""
        started, calls_before = self.clock(), self.aws.total_calls()
        self._begin(now)
        snapshot: Snapshot = self._observer.observe(now)
        return self._reconcile(snapshot, now, stop, started=started, calls_before=calls_before, whole=True)

    def run_batch(
        self,
        cluster: str,
        services: Sequence[str],
        now: datetime,
        stop: threading.Event | None = None,
        *,
        stopped_from_events: frozenset[str] = frozenset(),
    ) -> PassReport:
        """Up to 10 services of one cluster (names), read with one DescribeServices and reconciled. Those
        in `stopped_from_events` have their stopped tasks from the events (the evidence store)."""
        started, calls_before = self.clock(), self.aws.total_calls()
        self._begin(now)
        snapshot = self._observer.observe_services(cluster, services, now, stopped_from_events=stopped_from_events)
        read = {v.name for v in snapshot.services}
        gone = {name for _, name in snapshot.gone}
        unread = {name for name in services if name not in read and name not in gone}
        if unread:
            self.census.unread.setdefault(cluster, set()).update(unread)
        for _, name in snapshot.gone:
            arn = next((a for a in self.census.failing.get(cluster, {}) if a.rsplit("/", 1)[-1] == name), "")
            self.census.forget(cluster, arn, name)
            self._proposals.pop(arn, None)
            self.reporter.forget(arn)
        return self._reconcile(snapshot, now, stop, started=started, calls_before=calls_before, whole=False)

    def list_services(self, now: datetime) -> Listing:
        """What a resync queues: every selected service this replica reconciles, by cluster. The census
        forgets services no longer listed, and counts those a failed listing hid as unread."""
        self._begin(now)
        listing = self._observer.list_services(now)
        if not any(e.cluster == "*" for e in listing.errors):
            for cluster in self.census.clusters() - set(listing.clusters):
                self.census.drop_cluster(cluster)
        for cluster, arns in listing.services.items():
            self.census.keep_only(cluster, set(arns))
            self.census.unlisted.pop(cluster, None)
        for cluster, count in listing.unread.items():
            self.census.unlisted[cluster] = count
        known = {arn for arns in listing.services.values() for arn in arns}
        for arn in [a for a in self._proposals if a not in known and self._listed_cluster(a, listing)]:
            del self._proposals[arn]
        return listing

    def heartbeat(self, now: datetime) -> tuple[bool, str]:
        """Can the agent still see ECS? One read of the selected clusters (whose pause tags targeted reads
        then use). Counted as a pass: ok, or error with what went wrong."""
        try:
            problems = self._observer.refresh_clusters(now)
        except Exception as error:  # noqa: BLE001 - saying so is the point
            problems = (ObserveError("*", None, "DescribeClusters", f"{type(error).__name__}: {error}"),)
        blind = [p for p in problems if p.cluster == "*" or p.configuration]
        self.metrics.passes.labels("error" if blind else "ok").inc()
        if blind:
            self.log.warning("heartbeat_failed", operation=blind[0].operation, error=blind[0].message)
            return False, f"{blind[0].operation}: {blind[0].message}"
        self.metrics.last_pass.set(now.timestamp())
        return True, ""

    @staticmethod
    def _listed_cluster(arn: str, listing: Listing) -> bool:
        key = service_key(arn)
        return key is not None and key.cluster in listing.services

    def _begin(self, now: datetime) -> None:
        self.reporter.begin(now)
        observer = self._observer
        if self.evidence is not None:
            observer.evidence = self.evidence
            observer.evidence_window = self._evidence_window()
        sharded = self.ownership is not None and self.ownership.shards > 1
        observer.wanted = self.owns if sharded else None

    def _evidence_window(self) -> timedelta:
        """How far back stopped tasks can matter: the longest policy window, at least ECS's hour."""
        longest = max((p.policy.spec.when.within for p in self.policies().policies), default=0.0)
        return timedelta(seconds=max(3600.0, float(longest)))

    def _reconcile(
        self,
        snapshot: Snapshot,
        now: datetime,
        stop: threading.Event | None,
        *,
        started: float,
        calls_before: int,
        whole: bool,
    ) -> PassReport:
        """Every step after the read, the same for the full resync and a batch."""
        limits = self.limits
        errors = list(snapshot.errors)
        detected: dict[str, datetime] = {}  # service ARN -> when this pass diagnosed it
        assessments = self._assess(snapshot, now, errors, detected, started)
        self._seed_journal(assessments, now)
        assessments = [self._recover_if_writing(a, limits, now) for a in assessments]
        paused = self._storms(snapshot, assessments, limits, whole=whole)
        fleet = Fleet(paused, self.journal.in_last_hour(now))
        budget = Budget(limits.max_actions_per_hour - fleet.actions_in_last_hour)
        policies = self.policies()
        decisions: list[Decision] = []
        state_errors: list[tuple[str, str, str]] = []
        for assessment in sorted(assessments, key=lambda a: (a.view.cluster, a.view.name)):
            view = assessment.view
            tenure = self.tenure(view)
            service_limits = replace(limits, standby=tenure.standby)
            try:
                decision = decide_service(assessment, policies, service_limits, fleet=fleet, budget=budget, now=now)
            except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
                self._service_error(view, "decide", error, errors)
                continue
            decision = self._act_unless_stopping(decision, stop, now, errors, tenure)
            if not service_limits.standby:
                decision = self._announce(decision, policies, now)
            saved = self._remember(decision.assessment.view, decision.state, service_limits, tenure)
            if saved:
                state_errors.append((view.cluster, view.name, saved))
            decisions.append(decision)
        clusters = set(snapshot.clusters) | {a.view.cluster for a in assessments}
        failed = {(e.cluster, e.service) for e in errors if e.operation in _STAGES}
        report = PassReport(
            finished_at=now,
            duration_seconds=self.clock() - started,
            services=len(snapshot.services),
            findings=tuple(f for a in assessments for f in a.findings),
            proposals=tuple(d.proposal for d in decisions if d.proposal is not None),
            errors=tuple(errors),
            verdicts=tuple(verdict_report(d.assessment.view, d.judged) for d in decisions if d.judged is not None),
            paused_clusters={
                **paused,
                **{a.view.cluster: a.view.cluster_paused for a in assessments if a.view.cluster_paused},
                **(dict.fromkeys(clusters, "the pause switch is on") if self.settings.paused else {}),
            },
            aws_calls=self.aws.total_calls() - calls_before,
            escalations=tuple(
                (d.assessment.view.cluster, d.assessment.view.name, d.proposal.policy if d.proposal else "", step)
                for d in decisions
                for step in d.escalations
            ),
            unread=snapshot.unread,
            state_errors=tuple(state_errors),
            reconciled=tuple(
                (d.assessment.view.cluster, d.assessment.view.name)
                for d in decisions
                if (d.assessment.view.cluster, d.assessment.view.name) not in failed
            ),
            gone=snapshot.gone,
            unsettled=tuple((d.assessment.view.cluster, d.assessment.view.name) for d in decisions if _unsettled(d)),
        )
        self._keep_latest(report, decisions, whole=whole)
        self.recent_verdicts.extend(report.verdicts)
        if self.acting():
            # A batch speaks only for its own clusters: the others keep their pause as it was.
            before = self._paused_before if whole else self._paused_before & clusters
            for notification in announce.of_clusters(report.paused_clusters, before, now):
                self._submit(notification)
            self._paused_before = set(report.paused_clusters) | (set() if whole else self._paused_before - clusters)
        for decision in decisions:
            pending = decision.state.pending
            self.census.note_waiting(decision.assessment.view.arn, pending.since if pending is not None else None)
        self.reporter.pass_done(
            report,
            decisions,
            assessments,
            now,
            whole=whole,
            detected=detected,
            census=self.census,
            acting=self.acting(),
            shards_owned=len(self.ownership.owned()) if self.ownership is not None else None,
        )
        return report

    def _recover_if_writing(self, assessment: Assessment, limits: Limits, now: datetime) -> Assessment:
        if assessment.state.intent is None:
            return assessment
        tenure = self.tenure(assessment.view)
        if not self._writes(replace(limits, standby=tenure.standby)):
            return assessment
        return self._recover(assessment, now, tenure)

    def _seed_journal(self, assessments: Sequence[Assessment], now: datetime) -> None:
        """The journal learns the changes recorded on each managed service the first time it is read
        (the full pass at start reads them all; a batch may read a service first)."""
        fresh = [(a.view.arn, a.state) for a in assessments if self._managed(a.view) and a.view.arn not in self._seeded]
        if not fresh:
            return
        self._seeded.update(arn for arn, _ in fresh)
        self.journal.seeded = False  # seed() dedupes what it already holds
        self.journal.seed(fresh, now)

    def _storms(
        self, snapshot: Snapshot, assessments: Sequence[Assessment], limits: Limits, *, whole: bool
    ) -> dict[str, str]:
        """Clusters where acting would be guessing. A full pass counts what it read; a batch counts its
        services together with the census's word on the rest of their clusters."""
        if whole:
            self._renew_census(snapshot, assessments)
            return storm_clusters(assessments, limits, snapshot.unread)
        for assessment in assessments:
            self.census.note(assessment)
        read = {a.view.arn for a in assessments}
        clusters = set(snapshot.clusters) | {a.view.cluster for a in assessments}
        counted = [*assessments, *(s for c in sorted(clusters) for s in self.census.others(c, read))]
        unread = {c: self.census.unread_in(c) for c in clusters if self.census.unread_in(c)}
        return {c: why for c, why in storm_clusters(counted, limits, unread).items() if c in clusters}

    def _renew_census(self, snapshot: Snapshot, assessments: Sequence[Assessment]) -> None:
        fresh = Census()
        for assessment in assessments:
            fresh.note(assessment)
        fresh.unlisted.update(snapshot.unread)
        seen = {a.view.arn for a in assessments}
        fresh.waiting = {arn: since for arn, since in self.census.waiting.items() if arn in seen}
        self.census = fresh

    def _keep_latest(self, report: PassReport, decisions: Sequence[Decision], *, whole: bool) -> None:
        """`/proposals`: each service's latest proposal, from whichever pass read it last."""
        if whole:
            self._proposals = {}
        for decision in decisions:
            arn = decision.assessment.view.arn
            if decision.proposal is None:
                self._proposals.pop(arn, None)
            else:
                self._proposals[arn] = decision.proposal
        self.latest = tuple(sorted(self._proposals.values(), key=lambda p: (p.cluster, p.service)))
        self.latest_verdicts = report.verdicts

    def _announce(self, decision: Decision, policies: PolicySet, now: datetime) -> Decision:
        """Tell people about this service's changes of state, each once. A key is recorded with the
        service's state once its delivery settled (sent, or given up after its retries), so the next
        pass and a restarted agent do not send it again, and one that never left (a full queue, a
        shutdown) is sent again."""
        if self.notifier is None or not self.notifier.channels:
            return decision  # nothing is sent, so nothing is recorded
        view = decision.assessment.view
        state = self._delivered(view.arn, decision.state)
        waiting = self._announced.setdefault(view.arn, set())
        for notification in announce.of_decision(decision, policies, now):
            if notification.key not in state.notified:
                # Submitted again while unrecorded: the notifier drops a key on its way or settled, and
                # sends again one that never left.
                self._submit(notification)
                waiting.add(notification.key)
        self._last[view.arn] = (view, state)
        return replace(decision, state=state)

    def _delivered(self, arn: str, state: ServiceState) -> ServiceState:
        waiting = self._announced.get(arn, set())
        for key in sorted(self.ledger.known(waiting)):
            state = state.with_notified(key)
            waiting.discard(key)
        return state

    def remember_notifications(self) -> int:
        """Record what was delivered since the last pass (a one-shot command's end); returns how many
        services' states were written."""
        written = 0
        limits = self.limits
        for arn, (view, state) in list(self._last.items()):
            delivered = self._delivered(arn, state)
            if delivered != state:
                self._last[arn] = (view, delivered)
                tenure = self.tenure(view)
                self._remember(view, delivered, replace(limits, standby=tenure.standby), tenure)
                written += 1
        return written

    def _submit(self, notification: Notification) -> None:
        if self.notifier is not None:
            self.notifier.submit(notification)

    def _assess(
        self,
        snapshot: Snapshot,
        now: datetime,
        errors: list[ObserveError],
        detected: dict[str, datetime],
        started: float,
    ) -> list[Assessment]:
        assessments = []
        region = self.aws.region
        for view in snapshot.services:
            detected[view.arn] = now + timedelta(seconds=self.clock() - started)
            try:
                self._record_evidence(view)
                managed = self._managed(view)
                # Nothing is read from (or written to) a service the agent does not manage: tags there
                # are anyone's, and must not steer the agent or use up its limits.
                stored = self.store.load(view, now) if managed else Stored(EMPTY, "")
                state = self.journal.backstop(view.arn, self.memory.state(view.arn, stored))
                approval = self._approval(view, now) if managed else None
                assessments.append(assess(view, state, region_of(view.arn) or region, approval, stored.problems))
                self.reporter.problems(view, stored.problems)
            except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
                self._service_error(view, "assess", error, errors)
        return assessments

    def _record_evidence(self, view: ServiceView) -> None:
        """Keep the stopped tasks this pass read beyond ECS's hour (each task version once)."""
        evidence = self.evidence
        key = service_key(view.arn, cluster=view.cluster) if evidence is not None else None
        if evidence is None or key is None:
            return
        for task in view.stopped_tasks:
            seen = (str(task.get("taskArn")), int(task.get("version") or 0))
            if seen in self._recorded:
                continue
            evidence.record(key, task)
            self._recorded[seen] = None
            while len(self._recorded) > _RECORDED_TASKS:
                self._recorded.popitem(last=False)

    def _approval(self, view: ServiceView, now: datetime) -> approvals.Approval | None:
        """The approval on a service, if it is signed by an approver and still valid (else None, said once)."""
        signed, problem = approvals.decode(view.tags)
        if signed is None:
            if problem:
                self.reporter.problems(view, (Problem(approvals.APPROVAL_TAG, problem),))
            return None
        key_id = self.settings.approval_key_id
        refused = approvals.refusal(
            signed.approval,
            now=now,
            max_ttl=timedelta(seconds=self.settings.approval_max_ttl_seconds),
            agent=self.identity,
        )
        if not refused and not key_id:
            refused = "no approval key is configured (ECS_MEDIC_APPROVAL_KEY_ID): approvals cannot be verified"
        if refused:
            self.reporter.problems(view, (Problem(approvals.APPROVAL_TAG, refused),))
            return None
        cache_key = (view.arn, view.tags.get(approvals.APPROVAL_TAG, ""))
        if cache_key not in self._approvals_checked:
            if len(self._approvals_checked) >= APPROVALS_REMEMBERED:
                self._approvals_checked.clear()  # a bound, not a policy: they are checked again
            self._approvals_checked[cache_key] = approvals.verify(self.aws, str(key_id), view.arn, signed)
        if not self._approvals_checked[cache_key]:
            self.reporter.problems(view, (Problem(approvals.APPROVAL_TAG, "the signature does not verify"),))
            return None
        return signed.approval

    # --- recovering a change found half-way -----------------------------------------------------------

    def _recover(self, assessment: Assessment, now: datetime, tenure: Tenure) -> Assessment:
        """Finish or clean up a change whose intent outlived the process (or the lease) that wrote it."""
        view, state = assessment.view, assessment.state
        intent = state.intent
        if intent is None:
            return assessment
        if intent.holder != tenure.holder and now < intent.deadline:
            return assessment  # its writer may still be sending: nothing of it is sent after its deadline
        change = intent.change
        executor = Executor(self.aws, tenure.guard)
        log = self.log.bind(cluster=view.cluster, service=view.name, action=change.action, change=change.token)
        try:
            found = executor.find(intent.calls, token=change.token)
            outputs = found.outputs
            if found.progress is Progress.PARTIAL:
                fresh = now - intent.started < timedelta(seconds=MAX_CHANGE_SECONDS)
                if fresh and all(c.params is not None for c in intent.calls[found.done :]):
                    outputs = executor.run(
                        intent.calls,
                        token=change.token,
                        budget_seconds=self.settings.max_action_seconds,
                        start=found.done,
                        outputs=outputs,
                    )
                    found = replace(found, progress=Progress.COMPLETE)
                else:
                    self._undo(view, change, outputs, executor)
            if found.progress is Progress.COMPLETE:
                state = applied(
                    replace(state, intent=None),
                    change,
                    outputs=outputs,
                    revision=_revision(change, outputs),
                    now=now,
                    summary=f"{change.action} (finished after an interruption)",
                )
                self.journal.record(intent.started, view.arn, change.action, change.proposal_id)
                log.warning("change_recovered", outcome="completed", started=intent.started.isoformat())
            else:
                state = replace(state, intent=None)
                log.warning(
                    "change_recovered", outcome="abandoned", done=found.done, started=intent.started.isoformat()
                )
        except Exception as error:  # noqa: BLE001 - the intent stays; recovery is tried again next pass
            self.metrics.service_errors.labels(view.cluster, view.name, "recover").inc()
            log.warning("change_recovery_failed", error=f"{type(error).__name__}: {error}")
            return assessment
        return replace(assessment, state=state)

    def _undo(self, view: ServiceView, change: Change, outputs: Mapping[str, str], executor: Executor) -> None:
        """Take back the part of a change that happened (a revision registered but never used)."""
        from agent.actions import Change as PlanChange  # noqa: PLC0415 - the plan type

        plan = REGISTRY[change.action].revert(
            view, [PlanChange(c.field, c.current, c.desired) for c in change.changes], outputs
        )
        if plan is not None:
            executor.run(
                [record(c) for c in plan.calls],
                token=change.token,
                budget_seconds=self.settings.max_action_seconds,
            )

    # --- acting ------------------------------------------------------------------------------------------

    def _act_unless_stopping(
        self,
        decision: Decision,
        stop: threading.Event | None,
        now: datetime,
        errors: list[ObserveError],
        tenure: Tenure,
    ) -> Decision:
        proposal = decision.proposal
        if proposal is None or proposal.outcome is not Outcome.APPLY or decision.change is None:
            return decision
        if stop is not None and stop.is_set():
            # Shutting down: finish nothing new. The state stays as it was, so the next agent decides again.
            return replace(
                decision,
                proposal=replace(proposal, outcome=Outcome.PROPOSED, reason="shutting down: not started"),
                state=decision.assessment.state,
                change=None,
            )
        try:
            return self._act(decision, proposal, decision.change, now, tenure)
        except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
            self._service_error(decision.assessment.view, "act", error, errors)
            return replace(
                decision,
                proposal=replace(proposal, outcome=Outcome.FAILED, reason=f"{type(error).__name__}: {error}"),
                state=decision.assessment.state,
                change=None,
            )

    def _act(self, decision: Decision, proposal: Proposal, planned: Change, now: datetime, tenure: Tenure) -> Decision:
        view = decision.assessment.view
        plan = proposal.plan
        change = replace(planned, token=new_token())
        state = decision.state
        calls = [record(c) for c in plan.calls]
        log = self.log.bind(
            cluster=view.cluster,
            service=view.name,
            action=proposal.action,
            policy=proposal.policy,
            cause=proposal.cause,
            proposal=proposal.id,
            change=change.token,
        )
        if plan.mutates:
            intent = Intent(
                change=change,
                calls=for_intent(calls),
                holder=tenure.holder,
                fence=tenure.fence(),
                started=now,
                deadline=now + timedelta(seconds=self.settings.max_action_seconds),
            )
            try:
                self.store.save(view, replace(state, intent=intent), guard=tenure.guard)
            except StateNotSavedError as error:
                return self._failed(decision, proposal, f"not started: its intent could not be recorded ({error})", log)
            executor = Executor(self.aws, tenure.guard)
            try:
                outputs = executor.run(calls, token=change.token, budget_seconds=self.settings.max_action_seconds)
            except ChangeFailedError as failure:
                return self._change_failed(
                    decision, proposal, change=change, intent=intent, failure=failure, executor=executor, log=log
                )
            except LeaseLostError as error:
                # The new leader recovers the intent; this replica stops where it is.
                log.warning("remediation_interrupted", error=str(error))
                return replace(
                    decision,
                    proposal=replace(proposal, outcome=Outcome.FAILED, reason=f"leadership lost mid-change: {error}"),
                    state=replace(state, intent=intent),
                    change=None,
                )
            self.journal.record(now, view.arn, change.action, change.proposal_id)
        else:
            outputs = {}
        state = applied(
            state,
            change,
            outputs=outputs,
            revision=_revision(change, outputs),
            now=now,
            summary=plan.summary,
            mutates=plan.mutates,
        )
        outcome = Outcome.REVERTED if proposal.kind is Kind.REVERT else Outcome.APPLIED
        return replace(decision, proposal=replace(proposal, outcome=outcome), state=state, change=change)

    def _change_failed(
        self,
        decision: Decision,
        proposal: Proposal,
        *,
        change: Change,
        intent: Intent,
        failure: ChangeFailedError,
        executor: Executor,
        log: Any,  # noqa: ANN401 - a structlog logger
    ) -> Decision:
        state = replace(decision.state, intent=intent)
        if failure.done == 0:
            state = replace(state, intent=None)
        else:
            try:
                self._undo(decision.assessment.view, change, failure.outputs, executor)
                state = replace(state, intent=None)
            except Exception as error:  # noqa: BLE001 - the intent stays: recovery cleans up later
                log.warning("change_cleanup_failed", error=f"{type(error).__name__}: {error}")
        record_ = state.actions.get(change.action)
        if record_ is not None and record_.proposal_id == change.proposal_id:
            state = state.with_action(change.action, replace(record_, outcome=Outcome.FAILED.value))
        return self._failed(replace(decision, state=state), proposal, str(failure), log)

    def _failed(self, decision: Decision, proposal: Proposal, reason: str, log: Any) -> Decision:  # noqa: ANN401
        log.error("remediation_failed", mode=Mode.ENFORCE.value, outcome=Outcome.FAILED.value, error=reason)
        return replace(decision, proposal=replace(proposal, outcome=Outcome.FAILED, reason=reason), change=None)

    # --- remembering -------------------------------------------------------------------------------------

    def _remember(self, view: ServiceView, state: ServiceState, limits: Limits, tenure: Tenure) -> str:
        """Keep the state: written when this replica may write and the service is managed, else in
        memory as a delta on what is stored. Returns the error when a write failed ("" otherwise)."""
        managed = self._managed(view)
        stored_version = self.store.version(view) if managed else ""
        if not (self._writes(limits) and managed):
            self.memory.keep(view.arn, stored_version, state)
            return ""
        try:
            self.store.save(view, state, guard=tenure.guard)
        except StateNotSavedError as error:
            self.memory.keep(view.arn, stored_version, state)
            self.metrics.service_errors.labels(view.cluster, view.name, "state").inc()
            self.log.warning("state_not_saved", cluster=view.cluster, service=view.name, error=str(error))
            return str(error)
        self.memory.forget(view.arn)
        return ""

    # --- reporting ---------------------------------------------------------------------------------------

    def _service_error(self, view: ServiceView, stage: str, error: Exception, errors: list[ObserveError]) -> None:
        self.metrics.service_errors.labels(view.cluster, view.name, stage).inc()
        self.log.error(
            "service_failed",
            cluster=view.cluster,
            service=view.name,
            stage=stage,
            error=f"{type(error).__name__}: {error}",
        )
        errors.append(ObserveError(view.cluster, view.name, stage, f"{type(error).__name__}: {error}"))


def canonical_arn(service_arn: str, cluster: str) -> str:
    """The service's ARN in the long format (`service/<cluster>/<name>`), whichever format ECS gave: what
    its shard is a hash of, the same from a listing, a description or an event."""
    key = service_key(service_arn, cluster=cluster)
    return key.arn if key is not None else service_arn


_STAGES = frozenset({"assess", "decide", "act", "recover", "state"})  # a service's own errors (`_service_error`)


def _unsettled(decision: Decision) -> bool:
    """Whether a service is worth another look soon, whatever ECS's events say: it is not at steady
    state, a change of the agent's is in flight or being verified, or a proposal waits for approval
    (approving writes a tag, and ECS sends no event for that)."""
    state = decision.state
    return (
        not decision.assessment.view.steady
        or state.intent is not None
        or state.verifying is not None
        or state.pending is not None
        or decision.assessment.failing
    )


def _revision(change: Change, outputs: Mapping[str, str]) -> str | None:
    """The task definition new tasks run after a change, when it sets one (family:revision)."""
    if "revision" in outputs:
        return family_revision(outputs["revision"])
    for record_ in change.changes:
        if record_.field == "taskDefinition" and isinstance(record_.desired, str) and "<" not in record_.desired:
            return family_revision(record_.desired) or record_.desired
    return None
