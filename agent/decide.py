"""DECIDE: findings x policies x what the agent remembers x now -> what to do. Pure: no I/O, no clock.

Per service, in order:

1. A change still being written (an intent) blocks everything: it is recovered first.
2. A change being verified is judged (`agent.verdict`). Not effective: the attempt is recorded and,
   when the policy says so, the change is undone. Until a verdict, nothing else is proposed.
3. The highest-priority policy that matches and has something to change wins. A policy drives an
   *episode*: its own remediation up to `maxAttempts`, then each `escalation` step in order, each
   attempt sized from the evidence since the last change. When every step is spent the episode is
   exhausted: the agent stops acting and says so.
4. Limits come before approval, and dry-run is decided last, just before acting: everything else is
   decided for real, so a dry-run shows exactly what enforce mode would do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from agent.actions import REGISTRY, Context, Plan
from agent.arns import family_revision, revision_of
from agent.diagnose import last_good_task_definition
from agent.model import Finding, RiskFinding, ServiceView, SourceKind
from agent.settings import Mode
from agent.state import (
    MAX_ATTEMPTS,
    MAX_HISTORY,
    ActionRecord,
    Attempt,
    Change,
    ChangeRecord,
    Episode,
    Pending,
    ServiceState,
    Verification,
)
from agent.verdict import Verdict, current_evidence, judge

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from agent.actions.base import Params
    from agent.approvals import Approval
    from agent.policy.loader import LoadedPolicy, PolicySet
    from agent.state import Problem


class Outcome(StrEnum):
    """What happened to a proposal or a change (the `outcome` label of the remediation metric)."""

    PROPOSED = "proposed"  # dry-run, paused, standby, or a service the agent may not change
    AWAITING_APPROVAL = "awaiting_approval"
    APPLY = "apply"  # decided: the reconciler applies it now (then: applied or failed)
    APPLIED = "applied"
    FAILED = "failed"
    VERIFIED = "verified"
    NOT_EFFECTIVE = "not_effective"
    REVERTED = "reverted"
    ESCALATED = "escalated"
    SKIPPED_COOLDOWN = "skipped_cooldown"
    SKIPPED_LIMIT = "skipped_limit"


class Kind(StrEnum):
    REMEDIATION = "remediation"
    REVERT = "revert"  # undoes a change judged not effective


@dataclass(frozen=True, slots=True)
class Assessment:
    """One service as this pass sees it: observed, diagnosed, remembered, and any approval it carries."""

    view: ServiceView
    findings: tuple[Finding, ...]
    risks: tuple[RiskFinding, ...]
    state: ServiceState
    region: str | None = None
    approval: Approval | None = None  # verified: signed by an approver, unexpired
    problems: tuple[Problem, ...] = ()  # parts of the recorded state that were not believed

    @property
    def failing(self) -> bool:
        return not self.view.steady and any(f.failure for f in self.findings)


@dataclass(frozen=True, slots=True)
class Limits:
    """The safety settings decide enforces."""

    mode: Mode
    max_actions_per_hour: int
    storm_fraction: float
    storm_min_failing: int
    paused: bool
    managed_tag: str
    verify_timeout_seconds: float
    standby: bool = False  # another replica holds the lease: propose only


@dataclass(frozen=True, slots=True)
class Fleet:
    """What deciding for one service needs to know of the whole pass."""

    paused: Mapping[str, str]  # cluster -> why enforcement is paused there this pass (storms, failed reads)
    actions_in_last_hour: int  # applied changes, from the agent's own journal


@dataclass(frozen=True, slots=True)
class Step:
    """One rung of a policy's ladder: its own remediation, then each escalation step."""

    action: str
    params: Params
    attempts: int
    verify_seconds: float
    revert: bool


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
    kind: Kind = Kind.REMEDIATION
    step: int = 0  # 0: the policy's own remediation; n: its n-th escalation step
    attempt: int = 1  # of `attempts` at this step
    attempts: int = 1
    ladder: tuple[str, ...] = ()  # the policy's steps, by action
    history: tuple[Attempt, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cluster": self.cluster,
            "service": self.service,
            "cause": self.cause,
            "policy": self.policy,
            "action": self.action,
            "kind": self.kind.value,
            "summary": self.plan.summary,
            "decidedBy": self.plan.decided_by,
            "changes": [change.to_dict() for change in self.plan.changes],
            "evidence": list(self.evidence),
            "commands": list(self.plan.commands),
            "approval": self.approval,
            "mode": self.mode.value,
            "status": self.outcome.value,
            "reason": self.reason,
            "escalation": {
                "step": self.step,
                "ladder": list(self.ladder),
                "attempt": self.attempt,
                "attempts": self.attempts,
                "history": [_attempt_dict(a) for a in self.history],
            },
        }


def _attempt_dict(attempt: Attempt) -> dict[str, Any]:
    return {
        "action": attempt.action,
        "step": attempt.step,
        "at": attempt.at.isoformat(),
        "outcome": attempt.outcome,
        "summary": attempt.summary,
        "evidence": list(attempt.evidence),
    }


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict reached this pass on an earlier change."""

    verification: Verification
    verdict: Verdict

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.verdict.judgement.value)


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of deciding for one service: the proposal (if any), the change to make when it is to
    be applied, what was judged, and the state to remember."""

    assessment: Assessment
    proposal: Proposal | None
    state: ServiceState
    change: Change | None = None  # what APPLY records (the reconciler adds the token)
    judged: Judged | None = None
    escalations: tuple[str, ...] = ()  # this pass moved the episode on: "step 1 -> rollback_task_definition"


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


def ladder(policy: LoadedPolicy, limits: Limits) -> tuple[Step, ...]:
    spec = policy.policy.spec
    verify = spec.verify.timeout or limits.verify_timeout_seconds
    own = spec.remediation.action
    steps = [
        Step(
            own,
            policy.params,
            spec.max_attempts,
            verify,
            spec.revert_on_failure if spec.revert_on_failure is not None else REGISTRY[own].revert_by_default,
        )
    ]
    for step, params in zip(spec.escalation, policy.escalation_params, strict=True):
        revert = step.revert_on_failure
        if revert is None:
            revert = REGISTRY[step.action].revert_by_default
        steps.append(Step(step.action, params, step.attempts, step.timeout or verify, revert))
    return tuple(steps)


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


def matching(
    policy: LoadedPolicy, assessment: Assessment, now: datetime, *, continuing: bool = False
) -> tuple[list[Finding], list[RiskFinding]]:
    """The evidence that makes `policy` apply to the service now; empty lists when it does not apply.

    After a change only evidence from after it counts. An episode already under way (`continuing`)
    needs only as many new failures as its verdicts do, not the policy's full `occurrences` again.
    """
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
    findings = current_evidence(assessment.findings, assessment.state.changed_at, steady=view.steady)
    needed = policy.policy.spec.verify.failures if continuing else when.occurrences
    since = now - timedelta(seconds=when.within)
    if when.deployment is not None:
        state = "IN_PROGRESS" if when.deployment == "failing" else "FAILED"
        deployments = [
            f
            for f in findings
            if f.source_kind is SourceKind.DEPLOYMENT
            and f.subject.rollout_state == state
            and (f.subject.failed_tasks or 0) >= when.occurrences
            and (not when.cause or f.cause in when.cause)
        ]
        return deployments, []
    # A deployment that is still failing is current evidence of its cause however long ago it last
    # changed (ECS backs off launches for up to 15 minutes), and so is a problem event of a service
    # that has not reached steady state since (ECS does not repeat it until its cause is resolved);
    # stopped tasks count in the window.
    found = [
        f
        for f in findings
        if f.cause in when.cause
        and (
            f.subject.rollout_state == "IN_PROGRESS"
            if f.source_kind is SourceKind.DEPLOYMENT
            else f.occurred_at is None
            or f.occurred_at >= since
            or (f.source_kind is SourceKind.SERVICE_EVENT and not view.steady)
        )
    ]
    if len(found) < needed:
        return [], []
    if when.after_deploy is not None and not continuing and _after_deploy(assessment, found) != when.after_deploy:
        return [], []
    found.sort(key=lambda f: f.occurred_at or now, reverse=True)
    return found, []


def learn(assessment: Assessment) -> ServiceState:
    """What this pass teaches: a revision at steady state is the new last good (and no longer bad); a
    steady service with nothing being verified has no episode left to drive."""
    state = assessment.state
    view = assessment.view
    if view.steady and view.task_definition:
        revision = view.task_definition
        if state.last_good != revision or revision in state.bad_revisions:
            state = replace(
                state, last_good=revision, bad_revisions=tuple(r for r in state.bad_revisions if r != revision)
            )
    if view.steady and state.episode is not None and state.verifying is None:
        state = replace(state, episode=None)
    return state


def storm_clusters(
    assessments: Sequence[Assessment], limits: Limits, unread: Mapping[str, int] | None = None
) -> dict[str, str]:
    """Clusters where acting would be guessing: so many services fail at once (a service that could
    not be read counts as failing), or most of the cluster could not be read. cluster -> why."""
    unread = unread or {}
    totals: dict[str, list[int]] = {cluster: [count, count] for cluster, count in unread.items() if count}
    for assessment in assessments:
        counts = totals.setdefault(assessment.view.cluster, [0, 0])
        counts[0] += 1
        counts[1] += int(assessment.failing)
    paused: dict[str, str] = {}
    for cluster, (total, failing) in totals.items():
        missing = unread.get(cluster, 0)
        if missing and missing * 2 >= total:
            paused[cluster] = f"reads failed for {missing} of {total} services: nothing is changed on half a picture"
        elif failing >= limits.storm_min_failing and failing > limits.storm_fraction * total:
            unknown = f" ({missing} could not be read)" if missing else ""
            paused[cluster] = f"storm: {failing} of {total} services failing at once{unknown}"
    return paused


# --- the verdict on the change being verified -------------------------------------------------------


def _causes(policies: PolicySet, name: str, fallback: str) -> tuple[str, ...]:
    policy = next((p for p in policies.policies if p.name == name), None)
    causes = tuple(c.value for c in policy.policy.spec.when.cause) if policy else ()
    return causes or (fallback,)


def after_verdict(state: ServiceState, judged: Judged) -> ServiceState:
    """The state once a change was judged: the attempt's outcome and evidence go into the episode."""
    change = judged.verification.change
    outcome = judged.outcome
    record = state.actions.get(change.action)
    if record is not None and record.proposal_id == change.proposal_id:
        state = state.with_action(change.action, replace(record, outcome=outcome.value))
    episode = state.episode
    if episode is not None and episode.policy == change.policy:
        history = tuple(
            replace(a, outcome=outcome.value, evidence=judged.verdict.evidence[:3] or (judged.verdict.reason,))
            if a.token == change.token
            else a
            for a in episode.history
        )
        undo = judged.verification if change.revert and change.reverts is None else None
        episode = None if outcome is Outcome.VERIFIED else replace(episode, history=history, undo=undo)
    return replace(state, verifying=None, episode=episode)


# --- choosing what to do --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    policy: LoadedPolicy
    plan: Plan
    findings: list[Finding]
    risks: list[RiskFinding]
    steps: tuple[Step, ...]
    step: int
    attempt: int  # this one's number at its step
    exhausted: bool = False  # every step was tried: shown, never applied
    escalations: tuple[str, ...] = ()


def _climb(
    assessment: Assessment, policy: LoadedPolicy, steps: tuple[Step, ...], context: Context
) -> tuple[int, int, Plan | None, tuple[str, ...]]:
    """From where the episode is, the first step with an attempt left and something to change:
    (step, attempts already made at it, plan, escalations passed). Plan None: the ladder is spent."""
    episode = assessment.state.episode
    index, attempts = (episode.step, episode.attempts) if episode and episode.policy == policy.name else (0, 0)
    escalations: list[str] = []
    last_plan = None
    while index < len(steps):
        step = steps[index]
        plan = REGISTRY[step.action].plan(context, step.params)
        if plan is not None and attempts < step.attempts:
            return index, attempts, plan, tuple(escalations)
        last_plan = plan or last_plan
        index, attempts = index + 1, 0
        escalations.append(f"step {index} -> " + (steps[index].action if index < len(steps) else "a person"))
    return len(steps), 0, last_plan, tuple(escalations)


def _candidate(assessment: Assessment, policies: PolicySet, limits: Limits, now: datetime) -> _Candidate | None:
    """The highest-priority policy that applies to the service and has a change to make (or, for an
    episode that tried everything, the change it can no longer make, to say so)."""
    ordered = sorted(policies.policies, key=lambda p: (-p.policy.spec.priority, p.name))
    episode = assessment.state.episode
    for policy in ordered:
        if not selected(policy, assessment.view):
            continue
        continuing = episode is not None and episode.policy == policy.name
        findings, risks = matching(policy, assessment, now, continuing=continuing)
        if not findings and not risks:
            continue
        context = Context(
            assessment.view, findings, risks, assessment.state, assessment.region, assessment.state.changed_at
        )
        steps = ladder(policy, limits)
        if continuing and episode is not None and episode.exhausted:
            last = REGISTRY[steps[-1].action].plan(context, steps[-1].params)
            if last is None:
                continue
            return _Candidate(policy, last, findings, risks, steps, len(steps) - 1, steps[-1].attempts, exhausted=True)
        index, made, plan, escalations = _climb(assessment, policy, steps, context)
        if index < len(steps) and plan is not None:
            return _Candidate(policy, plan, findings, risks, steps, index, made + 1, escalations=escalations)
        if continuing and plan is not None:
            return _Candidate(
                policy,
                plan,
                findings,
                risks,
                steps,
                len(steps) - 1,
                steps[-1].attempts,
                exhausted=True,
                escalations=escalations,
            )
    return None


def _gate(
    assessment: Assessment,
    *,
    plan: Plan,
    proposal: str,
    kind: Kind,
    cooldown: float,
    approval: str,
    exhausted: bool,
    limits: Limits,
    fleet: Fleet,
    budget: Budget,
    now: datetime,
) -> tuple[Outcome, str]:
    """Limits, then approval, then mode: what may happen to this proposal now, and why."""
    state = assessment.state
    view = assessment.view
    record = state.actions.get(plan.action)
    if exhausted:
        tried = len(state.episode.history) if state.episode else 0
        return (
            Outcome.SKIPPED_LIMIT,
            f"escalated: every step of the policy was tried ({tried} changes); a person decides",
        )
    if kind is Kind.REMEDIATION and record and now - record.last_at < timedelta(seconds=cooldown):
        return Outcome.SKIPPED_COOLDOWN, f"cooldown: last {plan.action} at {record.last_at.isoformat()}"
    if plan.mutates and budget.remaining <= 0:
        return Outcome.SKIPPED_LIMIT, f"hourly cap: {limits.max_actions_per_hour} actions per hour reached"
    if plan.mutates and view.cluster in fleet.paused:
        return Outcome.PROPOSED, f"enforcement paused in {view.cluster}: {fleet.paused[view.cluster]}"
    if limits.paused or view.cluster_paused:
        return Outcome.PROPOSED, f"enforcement paused: {view.cluster_paused or 'the pause switch is on'}"
    if plan.mutates and view.tags.get(limits.managed_tag) != "true":
        return Outcome.PROPOSED, f"not managed: the service has no {limits.managed_tag}=true tag"
    if kind is Kind.REMEDIATION and approval == "manual":
        given = assessment.approval
        if given is None or given.proposal_id != proposal or given.expires <= now:
            return Outcome.AWAITING_APPROVAL, f"manual approval: run `ecs-medic approve {proposal}`"
    if limits.standby:
        return Outcome.PROPOSED, "standby: another replica holds the lease"
    if limits.mode is Mode.DRY_RUN:
        return Outcome.PROPOSED, "dry-run: no change made"
    return Outcome.APPLY, ""


@dataclass(slots=True)
class Budget:
    """Changes the hourly cap still allows this pass (shared by every service's decision)."""

    remaining: int


def _evidence(findings: Sequence[Finding], risks: Sequence[RiskFinding]) -> tuple[str, ...]:
    return tuple(line for f in findings[:5] for line in (f.summary, *f.evidence[:2])) + tuple(
        line for r in risks for line in (r.summary, *r.evidence)
    )


def _change(candidate: _Candidate, proposal: Proposal, superseded: Verification | None = None) -> Change:
    step = candidate.steps[candidate.step]
    spec = candidate.policy.policy.spec
    causes = tuple(c.value for c in spec.when.cause) or (proposal.cause,)
    return Change(
        token="",
        action=proposal.action,
        policy=proposal.policy,
        proposal_id=proposal.id,
        cause=",".join(causes),
        step=candidate.step,
        changes=tuple(ChangeRecord(c.field, c.current, c.desired) for c in proposal.plan.changes),
        revert=step.revert,
        settle_seconds=spec.verify.settle,
        failures=spec.verify.failures,
        verify_seconds=step.verify_seconds,
        quiet_seconds=proposal.plan.quiet_seconds,
        supersedes=superseded.change.token if superseded is not None else None,
    )


def decide_service(
    assessment: Assessment, policies: PolicySet, limits: Limits, *, fleet: Fleet, budget: Budget, now: datetime
) -> Decision:
    """What to do about one service now."""
    state = assessment.state
    if state.intent is not None:
        return Decision(assessment, None, state)  # a change still being written is recovered first
    judged = None
    if state.verifying is not None:
        verification = state.verifying
        change = verification.change
        verdict, watched = judge(
            assessment.view,
            assessment.findings,
            verification,
            now,
            causes=change.cause.split(","),
            judged_by=REGISTRY[change.action].judged_by if change.action in REGISTRY else "failures",
        )
        if verdict is None:
            # Nothing is learnt from a service while a change is judged: a revision steady for a moment
            # is not the last good one until the change is verified.
            state = replace(state, verifying=watched)
            return Decision(assessment, None, state)
        judged = Judged(verification, verdict)
        state = after_verdict(state, judged)
    state = learn(replace(assessment, state=state))
    current = replace(assessment, state=state)
    candidate = _candidate(current, policies, limits, now)
    undo = state.episode.undo if state.episode is not None else None
    superseded = None
    if undo is not None:
        replacing = _superseding(candidate, undo)
        if replacing is None:
            # The episode moves on to another action (or nowhere): undo the change that did not help first.
            reverted = _revert(current, undo, policies, limits, fleet=fleet, budget=budget, now=now)
            if reverted is not None:
                return replace(reverted, judged=judged)
            state = replace(state, episode=replace(state.episode, undo=None)) if state.episode else state
        else:
            candidate, superseded = replacing, undo
    if candidate is None:
        if state.pending is not None:
            state = replace(state, pending=None)  # the problem that needed approval is gone
        return Decision(assessment, None, state, judged=judged)
    proposal = _propose(current, candidate, limits, fleet=fleet, budget=budget, now=now)
    planned = _change(candidate, proposal, superseded) if proposal.outcome is Outcome.APPLY else None
    state = _remember(state, candidate, proposal, now)
    return Decision(assessment, proposal, state, planned, judged, candidate.escalations)


def _superseding(candidate: _Candidate | None, undo: Verification) -> _Candidate | None:
    """The candidate made to replace a change that did not help and clean up after it (None: the next
    change does not replace it, and it is undone first)."""
    if candidate is None or candidate.exhausted or undo.change.action not in REGISTRY:
        return None
    changes = tuple(_plan_change(c) for c in undo.change.changes)
    plan = REGISTRY[undo.change.action].supersede(candidate.plan, changes, undo.outputs)
    return replace(candidate, plan=plan) if plan is not None else None


def _propose(
    assessment: Assessment, candidate: _Candidate, limits: Limits, *, fleet: Fleet, budget: Budget, now: datetime
) -> Proposal:
    view = assessment.view
    spec = candidate.policy.policy.spec
    plan = candidate.plan
    identifier = proposal_id(view.cluster, view.name, candidate.policy.name, plan)
    outcome, reason = _gate(
        assessment,
        plan=plan,
        proposal=identifier,
        kind=Kind.REMEDIATION,
        cooldown=spec.cooldown,
        approval=spec.approval,
        exhausted=candidate.exhausted,
        limits=limits,
        fleet=fleet,
        budget=budget,
        now=now,
    )
    if outcome is Outcome.APPLY and plan.mutates:
        budget.remaining -= 1
    episode = assessment.state.episode
    return Proposal(
        id=identifier,
        cluster=view.cluster,
        service=view.name,
        service_arn=view.arn,
        policy=candidate.policy.name,
        action=plan.action,
        cause=(candidate.findings[0].cause.value if candidate.findings else candidate.risks[0].risk.value),
        plan=plan,
        evidence=_evidence(candidate.findings, candidate.risks),
        approval=spec.approval,
        mode=limits.mode,
        outcome=outcome,
        reason=reason,
        step=candidate.step,
        attempt=candidate.attempt,
        attempts=candidate.steps[candidate.step].attempts,
        ladder=tuple(s.action for s in candidate.steps),
        history=episode.history if episode and episode.policy == candidate.policy.name else (),
    )


def _revert(
    assessment: Assessment,
    undo: Verification,
    policies: PolicySet,
    limits: Limits,
    *,
    fleet: Fleet,
    budget: Budget,
    now: datetime,
) -> Decision | None:
    """Undo a change judged not effective, as a change of its own (exactly once, like any other)."""
    change = undo.change
    action = REGISTRY.get(change.action)
    if action is None:
        return None
    changes = tuple(_plan_change(c) for c in change.changes)
    plan = action.revert(assessment.view, changes, undo.outputs)
    if plan is None:
        return None
    view = assessment.view
    identifier = proposal_id(view.cluster, view.name, change.policy, plan)
    outcome, reason = _gate(
        assessment,
        plan=plan,
        proposal=identifier,
        kind=Kind.REVERT,
        cooldown=0,
        approval="auto",
        exhausted=False,
        limits=limits,
        fleet=fleet,
        budget=budget,
        now=now,
    )
    if outcome is Outcome.APPLY:
        budget.remaining -= 1
    episode = assessment.state.episode
    policy = next((p for p in policies.policies if p.name == change.policy), None)
    tried = next((a for a in reversed(episode.history) if a.token == change.token), None) if episode else None
    proposal = Proposal(
        id=identifier,
        cluster=view.cluster,
        service=view.name,
        service_arn=view.arn,
        policy=change.policy,
        action=plan.action,
        cause=change.cause.split(",")[0],
        plan=plan,
        evidence=tried.evidence if tried else (),
        approval="auto",
        mode=limits.mode,
        outcome=outcome,
        reason=reason or f"undo: {change.action} did not help",
        kind=Kind.REVERT,
        step=change.step,
        ladder=tuple(s.action for s in ladder(policy, limits)) if policy else (),
        history=episode.history if episode else (),
    )
    revert = None
    if outcome is Outcome.APPLY:
        revert = replace(
            change,
            changes=tuple(ChangeRecord(c.field, c.current, c.desired) for c in plan.changes),
            proposal_id=identifier,
            revert=False,
            reverts=change.token,
        )
    return Decision(assessment, proposal, assessment.state, revert)


def _plan_change(record: ChangeRecord) -> Any:  # noqa: ANN401 - the plan's Change type
    from agent.actions import Change as PlanChange  # noqa: PLC0415 - keep the plan type out of state

    return PlanChange(record.field, record.current, record.desired)


def _remember(state: ServiceState, candidate: _Candidate, proposal: Proposal, now: datetime) -> ServiceState:
    """The state after this pass's decision (before acting; `applied` records the act itself)."""
    episode = state.episode
    if (episode is None or episode.policy != candidate.policy.name) and candidate.escalations:
        # A new problem that starts past the policy's first step (nothing left to change there): the
        # episode starts at the step reached, so the escalation is told once.
        causes = ",".join(c.value for c in candidate.policy.policy.spec.when.cause) or proposal.cause
        state = replace(
            state, episode=Episode(candidate.policy.name, causes, now, candidate.step, candidate.attempt - 1)
        )
        episode = state.episode
    if episode is not None and episode.policy == candidate.policy.name:
        # Escalation moves on once: the next pass starts from the step reached now.
        if candidate.exhausted and not episode.exhausted:
            episode = replace(episode, exhausted=True)
        elif not candidate.exhausted and episode.step != candidate.step:
            episode = replace(episode, step=candidate.step, attempts=candidate.attempt - 1)
        state = replace(state, episode=episode)
    if proposal.outcome is Outcome.AWAITING_APPROVAL:
        if state.pending is None or state.pending.proposal_id != proposal.id:
            state = replace(state, pending=Pending(proposal.id, now))
        return state
    if proposal.outcome is not Outcome.APPLY and state.pending is not None and state.pending.proposal_id != proposal.id:
        state = replace(state, pending=None)
    return state


def applied(
    state: ServiceState,
    change: Change,
    *,
    outputs: Mapping[str, str],
    revision: str | None,
    now: datetime,
    summary: str,
    mutates: bool = True,
) -> ServiceState:
    """The state once `change` took effect at `now`: its record, its verification, the episode's history."""
    changes = tuple(_plan_change(c) for c in change.changes)
    state = replace(state, intent=None, pending=None, changed_at=now if mutates else state.changed_at)
    episode = state.episode
    if change.reverts is not None:
        if episode is not None:
            history = tuple(
                replace(a, outcome=Outcome.REVERTED.value) if a.token == change.reverts else a for a in episode.history
            )
            state = replace(state, episode=replace(episode, history=history, undo=None))
        return REGISTRY[change.action].state_after(changes, state)
    previous = state.actions.get(change.action)
    total = min((previous.attempts if previous and previous.outcome != Outcome.VERIFIED else 0) + 1, MAX_ATTEMPTS)
    state = state.with_action(change.action, ActionRecord(now, total, Outcome.APPLIED.value, change.proposal_id))
    if episode is None or episode.policy != change.policy or episode.exhausted:
        episode = Episode(change.policy, change.cause, now)
    # A notification is an attempt of its step too: a ladder that ends with a person ends.
    outcome = Outcome.APPLIED.value if mutates else "notified"
    attempt = Attempt(change.token, change.action, change.step, now, outcome, summary)
    history = episode.history
    undo = episode.undo
    if change.supersedes is not None and undo is not None and undo.change.token == change.supersedes:
        # The change it replaced is gone: marked so in the history, and never to be returned to.
        history = tuple(replace(a, outcome="superseded") if a.token == change.supersedes else a for a in history)
        replaced = family_revision(undo.outputs.get("revision", ""))
        if replaced:
            state = replace(state, bad_revisions=(*[r for r in state.bad_revisions if r != replaced], replaced))
        undo = None
    episode = replace(
        episode,
        step=change.step,
        attempts=episode.attempts + 1 if episode.step == change.step else 1,
        history=(*history, attempt)[-MAX_HISTORY:],
        undo=undo,
    )
    state = replace(state, episode=episode)
    if not mutates:
        return state
    verification = Verification(
        change=change,
        applied_at=now,
        since=now + timedelta(seconds=change.quiet_seconds),
        deadline=now + timedelta(seconds=change.verify_seconds),
        outputs=dict(outputs),
        revision=revision,
    )
    state = replace(state, verifying=verification)
    return REGISTRY[change.action].state_after(changes, state)


def decide(
    assessments: Sequence[Assessment],
    policies: PolicySet,
    limits: Limits,
    now: datetime,
    *,
    unread: Mapping[str, int] | None = None,
    actions_in_last_hour: int = 0,
) -> list[Decision]:
    """One decision per service, in a stable order (cluster, service)."""
    fleet = Fleet(storm_clusters(assessments, limits, unread), actions_in_last_hour)
    budget = Budget(limits.max_actions_per_hour - actions_in_last_hour)
    ordered = sorted(assessments, key=lambda a: (a.view.cluster, a.view.name))
    return [decide_service(a, policies, limits, fleet=fleet, budget=budget, now=now) for a in ordered]
