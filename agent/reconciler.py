"""One reconcile pass: observe -> diagnose -> decide -> act -> remember -> report.

The pass is a function of the world and `now`; it never sleeps (the loop decides when to come back).
Only the acting step and the state write change anything, and both go through the gateway, which
refuses writes in dry-run. In dry-run the agent's memory lives in the process; in enforce mode it is
written to the service's tags, so a restart between passes repeats no action.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agent.actions import REGISTRY
from agent.arns import region_of
from agent.decide import Assessment, Decision, Limits, Outcome, Proposal, decide, storm_clusters
from agent.diagnose import diagnose_service
from agent.diagnose.risks import risks_of
from agent.model import Finding, ServiceView, Subject
from agent.observe import ObserveError, Observer, Snapshot
from agent.settings import Mode, Settings
from agent.state import ServiceState, read_state, tag_changes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from agent.aws.gateway import AwsGateway
    from agent.metrics import Metrics
    from agent.policy.loader import PolicySet


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass saw and did."""

    finished_at: datetime
    duration_seconds: float
    services: int
    findings: tuple[Finding, ...]
    proposals: tuple[Proposal, ...]
    errors: tuple[ObserveError, ...]
    verifications: tuple[tuple[str, str, str, Outcome], ...]  # (cluster, service, action, verified/not_effective)
    paused_clusters: Mapping[str, str]
    aws_calls: int

    @property
    def result(self) -> str:
        """`ok`: every read succeeded; `partial`: some failed; `error`: the pass saw no service and
        something failed (an endpoint that does not answer, credentials that may not list clusters)."""
        if self.errors and not self.services:
            return "error"
        return "partial" if self.errors else "ok"

    @property
    def saw_fleet(self) -> bool:
        """Whether this pass counts as a finished pass: it read the fleet, all of it or part of it."""
        return self.result != "error"

    @property
    def configuration_errors(self) -> tuple[ObserveError, ...]:
        return tuple(e for e in self.errors if e.configuration)

    @property
    def failed_actions(self) -> int:
        return sum(1 for p in self.proposals if p.outcome is Outcome.FAILED)


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


def assess(view: ServiceView, state: ServiceState, region: str | None) -> Assessment:
    """Diagnose one observed service: its findings, its prevention risks, with what the agent remembers."""
    findings = diagnose_service(view.description, view.stopped_tasks, essential=essential_flags(view))
    subject = Subject(cluster=view.cluster, service=view.name, region=region, task_definition=view.task_definition)
    risks = risks_of(view.description, subject, view.task_definitions.get(view.task_definition))
    return Assessment(view, tuple(findings), tuple(risks), state, region)


@dataclass
class Reconciler:
    """Runs passes. Holds only the memory a dry-run agent has no tags for, and what it already reported."""

    aws: AwsGateway
    settings: Settings
    policies: Callable[[], PolicySet]
    metrics: Metrics
    log: Any
    observer: Observer | None = None
    clock: Callable[[], float] = time.monotonic
    leader: Callable[[], bool] = lambda: True
    memory: dict[str, ServiceState] = field(default_factory=dict)
    latest: tuple[Proposal, ...] = ()
    _counted_findings: set[tuple[str, str]] = field(default_factory=set)
    _counted_proposals: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._observer = self.observer or Observer(self.aws, clusters=self.settings.clusters)

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            mode=s.mode if self.leader() else Mode.DRY_RUN,
            max_actions_per_hour=s.max_actions_per_hour,
            storm_fraction=s.storm_fraction,
            storm_min_failing=s.storm_min_failing,
            paused=s.paused,
            managed_tag=s.managed_tag,
            verify_timeout_seconds=s.verify_timeout_seconds,
        )

    def _state_for(self, view: ServiceView) -> ServiceState:
        remembered = self.memory.get(view.arn)
        return remembered if remembered is not None else read_state(view.tags)

    def run_pass(self, now: datetime, stop: threading.Event | None = None) -> PassReport:
        started = self.clock()
        calls_before = self.aws.total_calls()
        limits = self.limits
        snapshot: Snapshot = self._observer.observe(now)
        region = self.aws.region
        assessments = [assess(view, self._state_for(view), region_of(view.arn) or region) for view in snapshot.services]
        decisions = decide(assessments, self.policies(), limits, now)
        proposals: list[Proposal] = []
        verifications = []
        done = [self._act_unless_stopping(planned, limits, stop) for planned in decisions]
        for decision in done:
            self._remember(decision, limits)
            if decision.proposal is not None:
                proposals.append(decision.proposal)
            if decision.verification is not None and decision.verified_action:
                view = decision.assessment.view
                verifications.append((view.cluster, view.name, decision.verified_action, decision.verification))
        storms = storm_clusters(assessments, limits)
        report = PassReport(
            finished_at=now,
            duration_seconds=self.clock() - started,
            services=len(snapshot.services),
            findings=tuple(f for a in assessments for f in a.findings),
            proposals=tuple(proposals),
            errors=snapshot.errors,
            verifications=tuple(verifications),
            paused_clusters={
                **storms,
                **{a.view.cluster: a.view.cluster_paused for a in assessments if a.view.cluster_paused},
                **(dict.fromkeys(snapshot.clusters, "the pause switch is on") if self.settings.paused else {}),
            },
            aws_calls=self.aws.total_calls() - calls_before,
        )
        self.latest = report.proposals
        self._report(report, done, assessments, now)
        return report

    def _act_unless_stopping(self, decision: Decision, limits: Limits, stop: threading.Event | None) -> Decision:
        proposal = decision.proposal
        if stop is not None and stop.is_set() and proposal is not None and proposal.outcome is Outcome.APPLY:
            # Shutting down: finish nothing new. The state stays as it was, so the next agent decides again.
            return replace(
                decision,
                proposal=replace(proposal, outcome=Outcome.PROPOSED, reason="shutting down: not started"),
                state=decision.assessment.state,
            )
        return self._act(decision, limits)

    def _act(self, decision: Decision, limits: Limits) -> Decision:
        proposal = decision.proposal
        if proposal is None or proposal.outcome is not Outcome.APPLY:
            return decision
        view = decision.assessment.view
        try:
            REGISTRY[proposal.action].apply(proposal.plan, self.aws)
        except Exception as error:
            self.log.exception(
                "remediation_failed",
                cluster=view.cluster,
                service=view.name,
                action=proposal.action,
                policy=proposal.policy,
                cause=proposal.cause,
                mode=limits.mode.value,
                outcome=Outcome.FAILED.value,
                proposal=proposal.id,
                error=f"{type(error).__name__}: {error}",
            )
            state = decision.state
            record = state.actions.get(proposal.action)
            if record is not None:
                state = state.with_action(proposal.action, replace(record, outcome=Outcome.FAILED))
            state = replace(state, verifying=None)
            return replace(decision, proposal=replace(proposal, outcome=Outcome.FAILED, reason=str(error)), state=state)
        return replace(decision, proposal=replace(proposal, outcome=Outcome.APPLIED))

    def _remember(self, decision: Decision, limits: Limits) -> None:
        view = decision.assessment.view
        state = replace(decision.state, unreadable=())
        if limits.mode is Mode.DRY_RUN:
            self.memory[view.arn] = state
            return
        to_set, to_remove = tag_changes(view.tags, state)
        try:
            if to_set:
                tags = [{"key": key, "value": value} for key, value in to_set.items()]
                self.aws.call("ecs", "TagResource", {"resourceArn": view.arn, "tags": tags})
            if to_remove:
                self.aws.call("ecs", "UntagResource", {"resourceArn": view.arn, "tagKeys": to_remove})
        except Exception as error:  # noqa: BLE001 - keep the state in memory and try again next pass
            self.memory[view.arn] = state
            self.log.warning(
                "state_not_saved", cluster=view.cluster, service=view.name, error=f"{type(error).__name__}: {error}"
            )
            return
        self.memory.pop(view.arn, None)

    def _report(
        self, report: PassReport, decisions: list[Decision], assessments: list[Assessment], now: datetime
    ) -> None:
        m, mode = self.metrics, self.limits.mode.value
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
            repeats = proposal.outcome in (Outcome.APPLIED, Outcome.FAILED)
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
                    summary=proposal.plan.summary,
                    reason=proposal.reason,
                )
        self._counted_proposals = live_proposals
        for decision in decisions:
            if decision.verification is not None and decision.verified_action:
                view = decision.assessment.view
                m.remediations.labels(
                    view.cluster,
                    view.name,
                    decision.verified_policy or "",
                    decision.verified_action,
                    decision.verification.value,
                ).inc()
                self.log.info(
                    "remediation_judged",
                    cluster=view.cluster,
                    service=view.name,
                    cause=None,
                    action=decision.verified_action,
                    mode=mode,
                    outcome=decision.verification.value,
                    policy=decision.verified_policy,
                )
        observed = Counter(a.view.cluster for a in assessments)
        unhealthy = Counter(a.view.cluster for a in assessments if a.failing)
        for cluster in report.paused_clusters:
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
