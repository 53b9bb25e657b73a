"""What a pass saw and did (`PassReport`), and the metrics and log lines made of it (`Reporter`): each
finding, proposal and state problem told once while it lasts, every verdict and escalation as it
happens, and the fleet's gauges from the census."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.decide import Outcome
from agent.evidence import stopped_at
from agent.model import SourceKind

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from agent.census import Census
    from agent.decide import Assessment, Decision, Judged, Proposal
    from agent.metrics import Metrics
    from agent.model import Finding, ServiceView
    from agent.observe import ObserveError
    from agent.state import Problem


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
    # For the work queue: the services decided without an error (their keys are done), those that are gone,
    # and those worth another look soon (not steady, a change in flight or being verified, an approval).
    reconciled: tuple[tuple[str, str], ...] = ()  # (cluster, service)
    gone: tuple[tuple[str, str], ...] = ()
    unsettled: tuple[tuple[str, str], ...] = ()

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


def verdict_report(view: ServiceView, judged: Judged | None) -> VerdictReport:
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


@dataclass
class Reporter:
    """Turns passes into metrics and log lines, for one reconciler."""

    metrics: Metrics
    log: Any
    mode: str
    watching_since: datetime | None = None  # detection latency counts tasks that stopped since then
    _counted_findings: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # service ARN -> counted
    _counted_proposals: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    _reported_problems: set[tuple[str, str]] = field(default_factory=set)

    def begin(self, now: datetime) -> None:
        if self.watching_since is None:
            self.watching_since = now

    def forget(self, arn: str) -> None:
        """A service that is gone: its findings and proposals are counted afresh if it comes back."""
        self._counted_findings.pop(arn, None)
        self._counted_proposals.pop(arn, None)

    def problems(self, view: ServiceView, problems: Sequence[Problem]) -> None:
        """Each problem with a service's recorded state, logged once."""
        for problem in problems:
            key = (view.arn, str(problem))
            if key not in self._reported_problems:
                self._reported_problems.add(key)
                self.log.warning(
                    "state_ignored", cluster=view.cluster, service=view.name, tag=problem.where, why=problem.why
                )

    def pass_done(
        self,
        report: PassReport,
        decisions: Sequence[Decision],
        assessments: Sequence[Assessment],
        now: datetime,
        *,
        whole: bool,
        detected: Mapping[str, datetime],
        census: Census,
        acting: bool,
        shards_owned: int | None,
    ) -> None:
        """The pass's metrics and log lines; `detected` is when each service's findings were made."""
        m, mode = self.metrics, self.mode
        for assessment in assessments:
            self._count_findings(assessment, detected.get(assessment.view.arn, now))
        for decision in decisions:
            self._count_proposals(decision)
        if whole:  # services the full pass did not see are gone: so are their counts
            seen = {a.view.arn for a in assessments}
            for counted in (self._counted_findings, self._counted_proposals):
                for arn in [a for a in counted if a not in seen]:
                    del counted[arn]
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
        touched = {a.view.cluster for a in assessments} | set(report.paused_clusters) | set(report.unread)
        for cluster in sorted(touched | (census.clusters() if whole else set())):
            known = census.failing.get(cluster, {})
            m.services_observed.labels(cluster).set(len(known))
            m.unhealthy_services.labels(cluster).set(sum(known.values()))
            m.enforcement_paused.labels(cluster).set(1 if cluster in report.paused_clusters else 0)
        waiting = census.waiting.values()
        m.pending_approvals.set(len(waiting))
        m.oldest_pending_approval.set(max(((now - since).total_seconds() for since in waiting), default=0))
        m.passes.labels(report.result).inc()
        m.pass_duration.observe(report.duration_seconds)
        if report.saw_fleet:  # a pass that read nothing is not a finished pass: the stalled alert must fire
            m.last_pass.set(now.timestamp())
        m.is_leader.set(1 if acting else 0)
        if shards_owned is not None:
            m.shards_owned.set(shards_owned)
        self.log.info(
            "reconcile_pass",
            result=report.result,
            mode=mode,
            scope="all" if whole else "batch",
            services=report.services,
            findings=len(report.findings),
            proposals=len(report.proposals),
            errors=len(report.errors),
            aws_calls=report.aws_calls,
            duration_seconds=round(report.duration_seconds, 3),
        )
        for error in report.errors:
            error.log(self.log)

    def _count_findings(self, assessment: Assessment, detected_at: datetime) -> None:
        """Each finding counted and logged once while its evidence lasts; a stopped task that stopped
        while the agent watched gives the detection latency (from its stop to this finding)."""
        arn = assessment.view.arn
        counted = self._counted_findings.get(arn, set())
        tasks = {str(t.get("taskArn")): t for t in assessment.view.stopped_tasks}
        live = set()
        for finding in assessment.findings:
            key = (finding.source, finding.cause.value)
            live.add(key)
            if key in counted:
                continue
            self.metrics.findings.labels(finding.cluster, finding.service or "", finding.cause.value).inc()
            if not finding.failure:
                continue
            self.log.info(
                "finding",
                cluster=finding.cluster,
                service=finding.service,
                cause=finding.cause.value,
                action=None,
                mode=self.mode,
                outcome=None,
                source=finding.source,
                summary=finding.summary,
            )
            task = tasks.get(finding.source) if finding.source_kind is SourceKind.TASK else None
            stopped = stopped_at(task) if task is not None else None  # a stopping task's too
            if stopped is not None and self.watching_since is not None and stopped >= self.watching_since:
                self.metrics.detection_latency.observe(max(0.0, (detected_at - stopped).total_seconds()))
        self._counted_findings[arn] = live  # bounded by the evidence still shown

    def _count_proposals(self, decision: Decision) -> None:
        arn = decision.assessment.view.arn
        counted = self._counted_proposals.get(arn, set())
        proposal = decision.proposal
        if proposal is None:
            self._counted_proposals.pop(arn, None)
            return
        key = (proposal.id, proposal.outcome.value)
        repeats = proposal.outcome in (Outcome.APPLIED, Outcome.FAILED, Outcome.REVERTED)
        if repeats or key not in counted:
            self.metrics.remediations.labels(
                proposal.cluster, proposal.service, proposal.policy, proposal.action, proposal.outcome.value
            ).inc()
            self.log.info(
                "remediation",
                cluster=proposal.cluster,
                service=proposal.service,
                cause=proposal.cause,
                action=proposal.action,
                policy=proposal.policy,
                mode=self.mode,
                outcome=proposal.outcome.value,
                proposal=proposal.id,
                kind=proposal.kind.value,
                step=proposal.step,
                attempt=proposal.attempt,
                summary=proposal.plan.summary,
                decided_by=proposal.plan.decided_by,
                reason=proposal.reason,
            )
        self._counted_proposals[arn] = {key}
