"""One reconcile pass: observe -> diagnose -> recover -> decide -> act -> remember -> report.

The pass is a function of the world and `now`; it never sleeps (the loop decides when to come back).
Every mode reads the same state store; only an enforcing leader writes it, and only for services it
manages. A change is made exactly once: its intent is written before its first call, every call is
checked before it is sent again, and an intent found later (a restart, a new leader) is finished or
cleaned up before anything else is decided for that service. One service's error is that service's
error: it is logged, counted and tried again next pass; the others go on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from agent import announce, approvals
from agent.act import ChangeFailedError, Executor, Progress, for_intent, record
from agent.actions import REGISTRY
from agent.arns import family_revision, region_of
from agent.decide import (
    Assessment,
    Budget,
    Decision,
    Fleet,
    Judged,
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
from agent.model import Finding, ServiceView, Subject
from agent.notify.dispatch import MemoryLedger
from agent.observe import ObserveError, Observer, Snapshot
from agent.settings import Mode, Settings
from agent.state import EMPTY, MAX_CHANGE_SECONDS, Intent, Problem, ServiceState
from agent.store import Memory, StateNotSavedError, Stored, TagStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from agent.aws.gateway import AwsGateway
    from agent.metrics import Metrics
    from agent.notify.events import Notification
    from agent.policy.loader import PolicySet
    from agent.state import Change


@dataclass(frozen=True, slots=True)
class VerdictReport:
    """A verdict reached this pass on a change the agent made earlier."""

    cluster: str
    service: str
    policy: str
    action: str
    outcome: Outcome
    reason: str
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "service": self.service,
            "policy": self.policy,
            "action": self.action,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass saw and did."""

    finished_at: datetime
    duration_seconds: float
    services: int
    findings: tuple[Finding, ...]
    proposals: tuple[Proposal, ...]
    errors: tuple[ObserveError, ...]
    verdicts: tuple[VerdictReport, ...]
    paused_clusters: Mapping[str, str]
    aws_calls: int
    escalations: tuple[tuple[str, str, str, str], ...] = ()  # (cluster, service, policy, what)
    unread: Mapping[str, int] = field(default_factory=dict)
    state_errors: tuple[tuple[str, str, str], ...] = ()  # (cluster, service, error): the state was not saved

    @property
    def verifications(self) -> tuple[tuple[str, str, str, Outcome], ...]:
        """(cluster, service, action, verified/not_effective) for each verdict."""
        return tuple((v.cluster, v.service, v.action, v.outcome) for v in self.verdicts)

    @property
    def result(self) -> str:
        """`ok`: every read succeeded; `partial`: some failed; `error`: the pass saw no service and
        something failed (an endpoint that does not answer, credentials that may not list clusters)."""
        if self.errors and not self.services:
            return "error"
        return "partial" if self.errors or self.unread else "ok"

    @property
    def saw_fleet(self) -> bool:
        """Whether this pass counts as a finished pass: it read the fleet, all of it or part of it."""
        return self.result != "error"

    @property
    def configuration_errors(self) -> tuple[ObserveError, ...]:
        return tuple(e for e in self.errors if e.configuration)

    @property
    def failed_actions(self) -> int:
        """Actions that failed, and changes made whose record could not be saved."""
        return sum(1 for p in self.proposals if p.outcome is Outcome.FAILED) + len(self.state_errors)


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
    guard: Callable[[], None] = lambda: None  # raises when this replica may not write (the lease)
    fence: Callable[[], int] = lambda: 0  # the lease's version: the fencing token of this replica's tenure
    holder: str = field(default_factory=new_token)
    identity: str | None = None  # the agent's own AWS identity (it may not approve its own proposals)
    memory: Memory = field(default_factory=Memory)
    journal: Journal = field(default_factory=Journal)
    latest: tuple[Proposal, ...] = ()
    recent_verdicts: deque[VerdictReport] = field(default_factory=partial(deque, maxlen=100))
    notifier: Any = None  # agent.notify.Notifier, built with `ledger`: submit() never blocks and never raises
    ledger: MemoryLedger = field(default_factory=MemoryLedger)  # keys whose delivery settled, until recorded
    _paused_before: set[str] = field(default_factory=set)
    _announced: dict[str, set[str]] = field(default_factory=dict)  # arn -> keys submitted, not yet recorded
    _last: dict[str, tuple[ServiceView, ServiceState]] = field(default_factory=dict)
    _counted_findings: set[tuple[str, str]] = field(default_factory=set)
    _counted_proposals: set[tuple[str, str]] = field(default_factory=set)
    _reported_problems: set[tuple[str, str]] = field(default_factory=set)
    _approvals_checked: dict[tuple[str, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._observer = self.observer or Observer(self.aws, clusters=self.settings.clusters)
        self.store = TagStore(self.aws)

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
            standby=not self.leader(),
        )

    def _writes(self, limits: Limits) -> bool:
        """Whether this pass may write anything at all (state included)."""
        return limits.mode is Mode.ENFORCE and not limits.standby

    def _managed(self, view: ServiceView) -> bool:
        return view.tags.get(self.settings.managed_tag) == "true"

    # --- the pass ---------------------------------------------------------------------------------------

    def run_pass(self, now: datetime, stop: threading.Event | None = None) -> PassReport:
        started = self.clock()
        calls_before = self.aws.total_calls()
        limits = self.limits
        snapshot: Snapshot = self._observer.observe(now)
        errors = list(snapshot.errors)
        assessments = self._assess(snapshot, now, errors)
        self.journal.seed(((a.view.arn, a.state) for a in assessments if self._managed(a.view)), now)
        if self._writes(limits):
            assessments = [self._recover(a, now) if a.state.intent is not None else a for a in assessments]
        paused = storm_clusters(assessments, limits, snapshot.unread)
        fleet = Fleet(paused, self.journal.in_last_hour(now))
        budget = Budget(limits.max_actions_per_hour - fleet.actions_in_last_hour)
        policies = self.policies()
        decisions: list[Decision] = []
        state_errors: list[tuple[str, str, str]] = []
        for assessment in sorted(assessments, key=lambda a: (a.view.cluster, a.view.name)):
            view = assessment.view
            try:
                decision = decide_service(assessment, policies, limits, fleet=fleet, budget=budget, now=now)
            except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
                self._service_error(view, "decide", error, errors)
                continue
            decision = self._act_unless_stopping(decision, stop, now, errors)
            if not limits.standby:
                decision = self._announce(decision, policies, now)
            saved = self._remember(decision.assessment.view, decision.state, limits)
            if saved:
                state_errors.append((view.cluster, view.name, saved))
            decisions.append(decision)
        report = PassReport(
            finished_at=now,
            duration_seconds=self.clock() - started,
            services=len(snapshot.services),
            findings=tuple(f for a in assessments for f in a.findings),
            proposals=tuple(d.proposal for d in decisions if d.proposal is not None),
            errors=tuple(errors),
            verdicts=tuple(_verdict_report(d.assessment.view, d.judged) for d in decisions if d.judged is not None),
            paused_clusters={
                **paused,
                **{a.view.cluster: a.view.cluster_paused for a in assessments if a.view.cluster_paused},
                **(dict.fromkeys(snapshot.clusters, "the pause switch is on") if self.settings.paused else {}),
            },
            aws_calls=self.aws.total_calls() - calls_before,
            escalations=tuple(
                (d.assessment.view.cluster, d.assessment.view.name, d.proposal.policy if d.proposal else "", step)
                for d in decisions
                for step in d.escalations
            ),
            unread=snapshot.unread,
            state_errors=tuple(state_errors),
        )
        self.latest = report.proposals
        self.recent_verdicts.extend(report.verdicts)
        if not limits.standby:
            for notification in announce.of_clusters(report.paused_clusters, self._paused_before, now):
                self._submit(notification)
            self._paused_before = set(report.paused_clusters)
        self._report(report, decisions, assessments, now)
        return report

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
                self._remember(view, delivered, limits)
                written += 1
        return written

    def _submit(self, notification: Notification) -> None:
        if self.notifier is not None:
            self.notifier.submit(notification)

    def _assess(self, snapshot: Snapshot, now: datetime, errors: list[ObserveError]) -> list[Assessment]:
        assessments = []
        region = self.aws.region
        for view in snapshot.services:
            try:
                managed = self._managed(view)
                # Nothing is read from (or written to) a service the agent does not manage: tags there
                # are anyone's, and must not steer the agent or use up its limits.
                stored = self.store.load(view, now) if managed else Stored(EMPTY, "")
                state = self.journal.backstop(view.arn, self.memory.state(view.arn, stored))
                approval = self._approval(view, now) if managed else None
                assessments.append(assess(view, state, region_of(view.arn) or region, approval, stored.problems))
                self._report_problems(view, stored.problems)
            except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
                self._service_error(view, "assess", error, errors)
        return assessments

    def _approval(self, view: ServiceView, now: datetime) -> approvals.Approval | None:
        """The approval on a service, if it is signed by an approver and still valid (else None, said once)."""
        signed, problem = approvals.decode(view.tags)
        if signed is None:
            if problem:
                self._report_problems(view, (Problem(approvals.APPROVAL_TAG, problem),))
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
            self._report_problems(view, (Problem(approvals.APPROVAL_TAG, refused),))
            return None
        cache_key = (view.arn, view.tags.get(approvals.APPROVAL_TAG, ""))
        if cache_key not in self._approvals_checked:
            if len(self._approvals_checked) >= APPROVALS_REMEMBERED:
                self._approvals_checked.clear()  # a bound, not a policy: they are checked again
            self._approvals_checked[cache_key] = approvals.verify(self.aws, str(key_id), view.arn, signed)
        if not self._approvals_checked[cache_key]:
            self._report_problems(view, (Problem(approvals.APPROVAL_TAG, "the signature does not verify"),))
            return None
        return signed.approval

    # --- recovering a change found half-way -----------------------------------------------------------

    def _recover(self, assessment: Assessment, now: datetime) -> Assessment:
        """Finish or clean up a change whose intent outlived the process (or the lease) that wrote it."""
        view, state = assessment.view, assessment.state
        intent = state.intent
        if intent is None:
            return assessment
        if intent.holder != self.holder and now < intent.deadline:
            return assessment  # its writer may still be sending: nothing of it is sent after its deadline
        change = intent.change
        executor = Executor(self.aws, self.guard)
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
        self, decision: Decision, stop: threading.Event | None, now: datetime, errors: list[ObserveError]
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
            return self._act(decision, proposal, decision.change, now)
        except Exception as error:  # noqa: BLE001 - one service's error never costs the others their pass
            self._service_error(decision.assessment.view, "act", error, errors)
            return replace(
                decision,
                proposal=replace(proposal, outcome=Outcome.FAILED, reason=f"{type(error).__name__}: {error}"),
                state=decision.assessment.state,
                change=None,
            )

    def _act(self, decision: Decision, proposal: Proposal, planned: Change, now: datetime) -> Decision:
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
                holder=self.holder,
                fence=self.fence(),
                started=now,
                deadline=now + timedelta(seconds=self.settings.max_action_seconds),
            )
            try:
                self.store.save(view, replace(state, intent=intent), guard=self.guard)
            except StateNotSavedError as error:
                return self._failed(decision, proposal, f"not started: its intent could not be recorded ({error})", log)
            executor = Executor(self.aws, self.guard)
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

    def _remember(self, view: ServiceView, state: ServiceState, limits: Limits) -> str:
        """Keep the state: written when this replica may write and the service is managed, else in
        memory as a delta on what is stored. Returns the error when a write failed ("" otherwise)."""
        managed = self._managed(view)
        stored_version = self.store.version(view) if managed else ""
        if not (self._writes(limits) and managed):
            self.memory.keep(view.arn, stored_version, state)
            return ""
        try:
            self.store.save(view, state, guard=self.guard)
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

    def _report_problems(self, view: ServiceView, problems: Sequence[Problem]) -> None:
        for problem in problems:
            key = (view.arn, str(problem))
            if key not in self._reported_problems:
                self._reported_problems.add(key)
                self.log.warning(
                    "state_ignored", cluster=view.cluster, service=view.name, tag=problem.where, why=problem.why
                )

    def _report(
        self, report: PassReport, decisions: list[Decision], assessments: list[Assessment], now: datetime
    ) -> None:
        m, mode = self.metrics, self.settings.mode.value
        live = set()
        for finding in report.findings:
            key = (finding.source, finding.cause.value)
            live.add(key)
            if key not in self._counted_findings:
                m.findings.labels(finding.cluster, finding.service or "", finding.cause.value).inc()
                if finding.failure:
                    self.log.info(
                        "finding",
                        cluster=finding.cluster,
                        service=finding.service,
                        cause=finding.cause.value,
                        action=None,
                        mode=mode,
                        outcome=None,
                        source=finding.source,
                        summary=finding.summary,
                    )
        self._counted_findings = live  # bounded by the evidence ECS still shows
        live_proposals = set()
        for proposal in report.proposals:
            key = (proposal.id, proposal.outcome.value)
            live_proposals.add(key)
            repeats = proposal.outcome in (Outcome.APPLIED, Outcome.FAILED, Outcome.REVERTED)
            if repeats or key not in self._counted_proposals:
                m.remediations.labels(
                    proposal.cluster, proposal.service, proposal.policy, proposal.action, proposal.outcome.value
                ).inc()
                self.log.info(
                    "remediation",
                    cluster=proposal.cluster,
                    service=proposal.service,
                    cause=proposal.cause,
                    action=proposal.action,
                    policy=proposal.policy,
                    mode=mode,
                    outcome=proposal.outcome.value,
                    proposal=proposal.id,
                    kind=proposal.kind.value,
                    step=proposal.step,
                    attempt=proposal.attempt,
                    summary=proposal.plan.summary,
                    decided_by=proposal.plan.decided_by,
                    reason=proposal.reason,
                )
        self._counted_proposals = live_proposals
        for verdict in report.verdicts:
            m.remediations.labels(
                verdict.cluster, verdict.service, verdict.policy, verdict.action, verdict.outcome.value
            ).inc()
            self.log.info(
                "remediation_judged",
                cluster=verdict.cluster,
                service=verdict.service,
                cause=None,
                action=verdict.action,
                mode=mode,
                outcome=verdict.outcome.value,
                policy=verdict.policy,
                reason=verdict.reason,
                evidence=list(verdict.evidence),
            )
        for cluster, service, policy, step in report.escalations:
            m.remediations.labels(cluster, service, policy, step.rsplit(" ", 1)[-1], Outcome.ESCALATED.value).inc()
            self.log.warning(
                "remediation_escalated", cluster=cluster, service=service, policy=policy, outcome="escalated", step=step
            )
        observed = Counter(a.view.cluster for a in assessments)
        unhealthy = Counter(a.view.cluster for a in assessments if a.failing)
        for cluster in (*report.paused_clusters, *report.unread):
            if cluster not in observed:
                observed[cluster] += 0
        for cluster, count in observed.items():
            m.services_observed.labels(cluster).set(count)
            m.unhealthy_services.labels(cluster).set(unhealthy.get(cluster, 0))
            m.enforcement_paused.labels(cluster).set(1 if cluster in report.paused_clusters else 0)
        waiting = [d.state.pending for d in decisions if d.state.pending is not None]
        m.pending_approvals.set(len(waiting))
        m.oldest_pending_approval.set(max(((now - p.since).total_seconds() for p in waiting), default=0))
        m.passes.labels(report.result).inc()
        m.pass_duration.observe(report.duration_seconds)
        if report.saw_fleet:  # a pass that read nothing is not a finished pass: the stalled alert must fire
            m.last_pass.set(now.timestamp())
        m.is_leader.set(1 if self.leader() else 0)
        self.log.info(
            "reconcile_pass",
            result=report.result,
            mode=mode,
            services=report.services,
            findings=len(report.findings),
            proposals=len(report.proposals),
            errors=len(report.errors),
            aws_calls=report.aws_calls,
            duration_seconds=round(report.duration_seconds, 3),
        )
        for error in report.errors:
            (self.log.error if error.configuration else self.log.warning)(
                "observe_failed",
                cluster=error.cluster,
                service=error.service,
                operation=error.operation,
                error=error.message,
                configuration=error.configuration,
            )


def _verdict_report(view: ServiceView, judged: Judged | None) -> VerdictReport:
    assert judged is not None  # noqa: S101 - filtered by the caller
    change = judged.verification.change
    return VerdictReport(
        view.cluster,
        view.name,
        change.policy,
        change.action,
        judged.outcome,
        judged.verdict.reason,
        judged.verdict.evidence,
    )


def _revision(change: Change, outputs: Mapping[str, str]) -> str | None:
    """The task definition new tasks run after a change, when it sets one (family:revision)."""
    if "revision" in outputs:
        return family_revision(outputs["revision"])
    for record_ in change.changes:
        if record_.field == "taskDefinition" and isinstance(record_.desired, str) and "<" not in record_.desired:
            return family_revision(record_.desired) or record_.desired
    return None
