"""DECIDE: findings x policies x what the agent remembers x now -> proposals. Pure: no I/O, no clock.

For each service, the highest-priority policy that matches and has something to change wins; at most
one action per service per pass, and none while an earlier action is still being verified. Limits come
before approval, and dry-run is decided last, just before acting: everything else is decided for real,
so a dry-run shows exactly what enforce mode would do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from agent.actions import REGISTRY, Context, Plan
from agent.arns import revision_of
from agent.diagnose import last_good_task_definition
from agent.model import Finding, RiskFinding, ServiceView, SourceKind
from agent.settings import Mode
from agent.state import ActionRecord, Pending, ServiceState, Verification

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from agent.policy.loader import LoadedPolicy, PolicySet


class Outcome(StrEnum):
    """What happened to a proposal in this pass (the `outcome` label of the remediation metric)."""

    PROPOSED = "proposed"  # dry-run, paused, or a service the agent may not change: shown, not applied
    AWAITING_APPROVAL = "awaiting_approval"
    APPLY = "apply"  # decided: the reconciler applies it now (then: applied or failed)
    APPLIED = "applied"
    FAILED = "failed"
    VERIFIED = "verified"
    NOT_EFFECTIVE = "not_effective"
    SKIPPED_COOLDOWN = "skipped_cooldown"
    SKIPPED_LIMIT = "skipped_limit"


@dataclass(frozen=True, slots=True)
class Assessment:
    """One service as this pass sees it: observed, diagnosed, remembered."""

    view: ServiceView
    findings: tuple[Finding, ...]
    risks: tuple[RiskFinding, ...]
    state: ServiceState
    region: str | None = None

    @property
    def failing(self) -> bool:
        return not self.view.steady and any(f.failure for f in self.findings)


@dataclass(frozen=True, slots=True)
class Limits:
    """The safety settings decide enforces, and what it needs to know of the whole fleet."""

    mode: Mode
    max_actions_per_hour: int
    storm_fraction: float
    storm_min_failing: int
    paused: bool
    managed_tag: str
    verify_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """A remediation for one service: what, why, the exact change and command, and what became of it."""

    id: str
    cluster: str
    service: str
    service_arn: str
    policy: str
    action: str
    cause: str  # the cause code, or the risk code for prevention policies
    plan: Plan
    evidence: tuple[str, ...]
    approval: str
    mode: Mode
    outcome: Outcome
    reason: str = ""  # why it was skipped, proposed only, or is waiting

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cluster": self.cluster,
            "service": self.service,
            "cause": self.cause,
            "policy": self.policy,
            "action": self.action,
            "summary": self.plan.summary,
            "changes": [change.to_dict() for change in self.plan.changes],
            "evidence": list(self.evidence),
            "commands": list(self.plan.commands),
            "approval": self.approval,
            "mode": self.mode.value,
            "status": self.outcome.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of deciding for one service: the proposal (if any) and the state to remember."""

    assessment: Assessment
    proposal: Proposal | None
    state: ServiceState
    verification: Outcome | None = None  # VERIFIED or NOT_EFFECTIVE when an earlier action was judged
    verified_action: str | None = None
    verified_policy: str | None = None


def proposal_id(cluster: str, service: str, policy: str, plan: Plan) -> str:
    """Stable across passes while the same change is proposed, so an approval can name it."""
    desired = repr([(c.field, c.desired) for c in plan.changes])
    digest = hashlib.sha256(f"{cluster}/{service}/{policy}/{plan.action}/{desired}".encode()).hexdigest()
    return f"p-{digest[:10]}"


def selected(policy: LoadedPolicy, view: ServiceView) -> bool:
    selector = policy.policy.spec.selector
    return (
        any(fnmatchcase(view.cluster, pattern) for pattern in selector.clusters)
        and any(fnmatchcase(view.name, pattern) for pattern in selector.services)
        and all(view.tags.get(key) == value for key, value in selector.tags.items())
    )


def last_good(assessment: Assessment) -> str | None:
    """The revision that last reached steady state: remembered, or the COMPLETED deployment's."""
    return assessment.state.last_good or last_good_task_definition(assessment.view.description)


def _after_deploy(assessment: Assessment, findings: Sequence[Finding]) -> bool:
    """The failing tasks run a newer revision than the last good one: the failure came with a deploy."""
    good = last_good(assessment)
    if not good:
        return False
    family, good_revision = good.split(":", 1)[0], revision_of(good)
    for finding in findings:
        failing = finding.subject.task_definition or ""
        if failing.split(":", 1)[0] == family and (revision_of(failing) or 0) > (good_revision or 0):
            return True
    return False


def matching(policy: LoadedPolicy, assessment: Assessment, now: datetime) -> tuple[list[Finding], list[RiskFinding]]:
    """The evidence that makes `policy` apply to the service now; empty lists when it does not apply."""
    when = policy.policy.spec.when
    view = assessment.view
    if when.launch_type and view.launch_type != when.launch_type:
        return [], []
    if when.circuit_breaker:
        breaker = (view.description.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
        if ("enabled" if breaker.get("enable") else "disabled") != when.circuit_breaker:
            return [], []
    if when.risk is not None:
        risks = [r for r in assessment.risks if r.risk == when.risk]
        return [], risks
    since = now - timedelta(seconds=when.within)
    if when.deployment is not None:
        state = "IN_PROGRESS" if when.deployment == "failing" else "FAILED"
        deployments = [
            f
            for f in assessment.findings
            if f.source_kind is SourceKind.DEPLOYMENT
            and f.subject.rollout_state == state
            and (f.subject.failed_tasks or 0) >= when.occurrences
            and (not when.cause or f.cause in when.cause)
        ]
        return deployments, []
    # A deployment that is still failing is current evidence of its cause however long ago it last
    # changed (ECS backs off launches for up to 15 minutes); stopped tasks and events count in the window.
    found = [
        f
        for f in assessment.findings
        if f.cause in when.cause
        and (
            f.subject.rollout_state == "IN_PROGRESS"
            if f.source_kind is SourceKind.DEPLOYMENT
            else f.occurred_at is None or f.occurred_at >= since
        )
    ]
    if len(found) < when.occurrences:
        return [], []
    if when.after_deploy is not None and _after_deploy(assessment, found) != when.after_deploy:
        return [], []
    found.sort(key=lambda f: f.occurred_at or now, reverse=True)
    return found, []


def judge(assessment: Assessment, now: datetime) -> tuple[Outcome | None, ServiceState]:
    """Judge an action being verified: VERIFIED once the service is steady, NOT_EFFECTIVE past its deadline."""
    state = assessment.state
    pending = state.verifying
    if pending is None:
        return None, state
    record = state.actions.get(pending.action)
    if assessment.view.steady:
        if record:
            state = state.with_action(pending.action, replace(record, attempts=0, outcome=Outcome.VERIFIED))
        return Outcome.VERIFIED, replace(state, verifying=None)
    if now >= pending.deadline:
        if record:
            state = state.with_action(pending.action, replace(record, outcome=Outcome.NOT_EFFECTIVE))
        return Outcome.NOT_EFFECTIVE, replace(state, verifying=None)
    return None, state


def learn(assessment: Assessment) -> ServiceState:
    """What this pass teaches: a revision at steady state is the new last good (and no longer bad)."""
    state = assessment.state
    if assessment.view.steady and assessment.view.task_definition:
        revision = assessment.view.task_definition
        if state.last_good != revision or revision in state.bad_revisions:
            state = replace(
                state, last_good=revision, bad_revisions=tuple(r for r in state.bad_revisions if r != revision)
            )
    return state


def actions_in_last_hour(states: Iterable[ServiceState], now: datetime) -> int:
    """Applied (non-notify) actions across the fleet in the last hour, from what each service remembers."""
    since = now - timedelta(hours=1)
    return sum(
        1
        for state in states
        for action, record in state.actions.items()
        if action != "notify" and record.last_at >= since and record.outcome != Outcome.FAILED
    )


def storm_clusters(assessments: Sequence[Assessment], limits: Limits) -> dict[str, str]:
    """Clusters where so many services fail at once that acting would be guessing: cluster -> why."""
    totals: dict[str, list[int]] = {}
    for assessment in assessments:
        counts = totals.setdefault(assessment.view.cluster, [0, 0])
        counts[0] += 1
        counts[1] += int(assessment.failing)
    return {
        cluster: f"storm: {failing} of {total} services failing at once"
        for cluster, (total, failing) in totals.items()
        if failing >= limits.storm_min_failing and failing > limits.storm_fraction * total
    }


@dataclass(slots=True)
class _Budget:
    remaining: int


def _candidate(
    assessment: Assessment, policies: PolicySet, now: datetime
) -> tuple[LoadedPolicy, Plan, list[Finding], list[RiskFinding]] | None:
    """The highest-priority policy that applies to the service and has a change to make."""
    ordered = sorted(policies.policies, key=lambda p: (-p.policy.spec.priority, p.name))
    for policy in ordered:
        if not selected(policy, assessment.view):
            continue
        findings, risks = matching(policy, assessment, now)
        if not findings and not risks:
            continue
        context = Context(assessment.view, findings, risks, assessment.state, assessment.region)
        plan = REGISTRY[policy.policy.spec.remediation.action].plan(context, policy.params)
        if plan is not None:
            return policy, plan, findings, risks
    return None


def _gate(
    assessment: Assessment,
    *,
    policy: LoadedPolicy,
    plan: Plan,
    proposal: str,
    limits: Limits,
    storms: dict[str, str],
    budget: _Budget,
    now: datetime,
) -> tuple[Outcome, str]:
    """Limits, then approval, then mode: what may happen to this proposal now, and why."""
    spec = policy.policy.spec
    state = assessment.state
    record = state.actions.get(plan.action)
    if record and record.attempts >= spec.max_attempts and record.outcome != Outcome.VERIFIED:
        return (
            Outcome.SKIPPED_LIMIT,
            f"escalated: {record.attempts} attempts did not fix it (maxAttempts {spec.max_attempts})",
        )
    if record and now - record.last_at < timedelta(seconds=spec.cooldown):
        return Outcome.SKIPPED_COOLDOWN, f"cooldown: last {plan.action} at {record.last_at.isoformat()}"
    if plan.mutates and budget.remaining <= 0:
        return Outcome.SKIPPED_LIMIT, f"hourly cap: {limits.max_actions_per_hour} actions per hour reached"
    if plan.mutates and assessment.view.cluster in storms:
        return Outcome.PROPOSED, f"enforcement paused in {assessment.view.cluster}: {storms[assessment.view.cluster]}"
    if limits.paused or assessment.view.cluster_paused:
        reason = assessment.view.cluster_paused or "the pause switch is on"
        return Outcome.PROPOSED, f"enforcement paused: {reason}"
    if plan.mutates and assessment.view.tags.get(limits.managed_tag) != "true":
        return Outcome.PROPOSED, f"not managed: the service has no {limits.managed_tag}=true tag"
    if spec.approval == "manual":
        approval = state.approved
        if approval is None or approval.proposal_id != proposal or approval.expires <= now:
            return Outcome.AWAITING_APPROVAL, f"manual approval: run `ecs-medic approve {proposal}`"
    if limits.mode is Mode.DRY_RUN:
        return Outcome.PROPOSED, "dry-run: no change made"
    return Outcome.APPLY, ""


def _remember(
    state: ServiceState, proposal: Proposal, policy: LoadedPolicy, limits: Limits, now: datetime
) -> ServiceState:
    """The state after this pass's decision (before acting; the reconciler records the act's result)."""
    if proposal.outcome is Outcome.AWAITING_APPROVAL:
        if state.pending is None or state.pending.proposal_id != proposal.id:
            state = replace(state, pending=Pending(proposal.id, now))
        if state.approved and state.approved.expires <= now:
            state = replace(state, approved=None)
        return state
    if proposal.outcome is not Outcome.APPLY:
        return state
    previous = state.actions.get(proposal.action)
    attempts = (previous.attempts if previous and previous.outcome != Outcome.VERIFIED else 0) + 1
    state = state.with_action(proposal.action, ActionRecord(now, attempts, Outcome.APPLIED, proposal.id))
    state = replace(state, pending=None, approved=None)
    if proposal.plan.mutates:
        deadline = now + timedelta(seconds=limits.verify_timeout_seconds)
        state = replace(state, verifying=Verification(proposal.action, policy.name, proposal.id, now, deadline))
    return REGISTRY[proposal.action].state_after(proposal.plan, state)


def _propose(
    assessment: Assessment,
    policy: LoadedPolicy,
    plan: Plan,
    findings: Sequence[Finding],
    risks: Sequence[RiskFinding],
    *,
    limits: Limits,
    storms: dict[str, str],
    budget: _Budget,
    now: datetime,
) -> Proposal:
    view = assessment.view
    identifier = proposal_id(view.cluster, view.name, policy.name, plan)
    outcome, reason = _gate(
        assessment, policy=policy, plan=plan, proposal=identifier, limits=limits, storms=storms, budget=budget, now=now
    )
    if outcome is Outcome.APPLY and plan.mutates:
        budget.remaining -= 1
    evidence = tuple(line for f in findings[:5] for line in (f.summary, *f.evidence[:2])) + tuple(
        line for r in risks for line in (r.summary, *r.evidence)
    )
    return Proposal(
        id=identifier,
        cluster=view.cluster,
        service=view.name,
        service_arn=view.arn,
        policy=policy.name,
        action=plan.action,
        cause=(findings[0].cause.value if findings else risks[0].risk.value),
        plan=plan,
        evidence=evidence,
        approval=policy.policy.spec.approval,
        mode=limits.mode,
        outcome=outcome,
        reason=reason,
    )


def decide(assessments: Sequence[Assessment], policies: PolicySet, limits: Limits, now: datetime) -> list[Decision]:
    """One decision per service, in a stable order (cluster, service)."""
    storms = storm_clusters(assessments, limits)
    budget = _Budget(limits.max_actions_per_hour - actions_in_last_hour((a.state for a in assessments), now))
    decisions = []
    for assessment in sorted(assessments, key=lambda a: (a.view.cluster, a.view.name)):
        verdict, state = judge(assessment, now)
        state = learn(replace(assessment, state=state))
        current = replace(assessment, state=state)
        proposal = None
        # While an earlier action is being verified, nothing else is proposed for the service.
        candidate = _candidate(current, policies, now) if state.verifying is None else None
        if candidate is not None:
            policy, plan, findings, risks = candidate
            proposal = _propose(
                current, policy, plan, findings, risks, limits=limits, storms=storms, budget=budget, now=now
            )
            state = _remember(state, proposal, policy, limits, now)
        if proposal is None and state.pending is not None:
            state = replace(state, pending=None)  # the problem that needed approval is gone
        decisions.append(
            Decision(
                assessment=current,
                proposal=proposal,
                state=state,
                verification=verdict,
                verified_action=assessment.state.verifying.action if verdict and assessment.state.verifying else None,
                verified_policy=assessment.state.verifying.policy if verdict and assessment.state.verifying else None,
            )
        )
    return decisions
