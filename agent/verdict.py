"""Judge a change by what ECS reports after it. Pure: the service as observed, the change, and `now`.

Only evidence from after the change counts: tasks started after it (running the revision it set,
when it set one), service events and deployments newer than it. A change is

- **not effective** as soon as `failures` such tasks stop with one of the causes it was meant to fix,
  or the deployment it started fails;
- **verified** once the service is at steady state after it and has stayed there for `settle_seconds`;
- **not effective** at its deadline otherwise (the fallback when ECS shows nothing either way).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from agent.arns import as_datetime
from agent.model import Finding, SourceKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from agent.model import ServiceView
    from agent.state import Verification


class Judgement(StrEnum):
    VERIFIED = "verified"
    NOT_EFFECTIVE = "not_effective"


@dataclass(frozen=True, slots=True)
class Verdict:
    judgement: Judgement
    reason: str
    evidence: tuple[str, ...] = ()


def started_at(finding: Finding) -> datetime | None:
    """When the task a finding is about started (its stop time minus how long it ran)."""
    if finding.occurred_at is None or finding.subject.run_seconds is None:
        return None
    return finding.occurred_at - timedelta(seconds=finding.subject.run_seconds)


def after(finding: Finding, since: datetime, revision: str | None) -> bool:
    """Whether a finding is evidence about the service as it is since `since` (and runs `revision`)."""
    if finding.occurred_at is None or finding.occurred_at <= since:
        return False
    if finding.source_kind is SourceKind.TASK:
        began = started_at(finding)
        if began is not None and began < since:
            return False  # the task started before the change: it says nothing about the change
        if revision and finding.subject.task_definition and finding.subject.task_definition != revision:
            return False
    return True


def evidence_after(
    findings: Iterable[Finding], since: datetime | None, revision: str | None = None
) -> tuple[Finding, ...]:
    """The findings that are new since a change at `since` (all of them when there was none): what a
    verdict is based on."""
    if since is None:
        return tuple(findings)
    return tuple(f for f in findings if after(f, since, revision))


def current_evidence(findings: Iterable[Finding], since: datetime | None, *, steady: bool) -> tuple[Finding, ...]:
    """The findings that describe the service as it is now, after a change at `since`: new ones, a
    rollout still in progress, and service events of a service still not at steady state (ECS does not
    repeat an event until its cause is resolved or six hours pass, so an unresolved one is current)."""
    if since is None:
        return tuple(findings)
    return tuple(f for f in findings if after(f, since, None) or _ongoing(f, steady=steady))


def _ongoing(finding: Finding, *, steady: bool) -> bool:
    """A rollout still in progress, or a problem event of a service that has not been steady since."""
    if finding.source_kind is SourceKind.DEPLOYMENT:
        return finding.subject.rollout_state == "IN_PROGRESS"
    return finding.source_kind is SourceKind.SERVICE_EVENT and not steady


def shortfall(view: ServiceView) -> int:
    """Tasks the service wants but has neither running nor starting, across its deployments."""
    short = 0
    for deployment in view.deployments:
        wanted = int(deployment.get("desiredCount") or 0)
        have = int(deployment.get("runningCount") or 0) + int(deployment.get("pendingCount") or 0)
        short += max(0, wanted - have)
    return short


def _failed_deployment(view: ServiceView, verification: Verification) -> str | None:
    """The rollout the change started, if it failed: a deployment of the change's revision, created
    after it, marked FAILED."""
    if verification.revision is None:
        return None
    for deployment in view.deployments:
        created = as_datetime(deployment.get("createdAt"))
        revision = str(deployment.get("taskDefinition") or "").rsplit("/", 1)[-1]
        if (
            revision == verification.revision
            and created is not None
            and created >= verification.applied_at - timedelta(seconds=5)
            and deployment.get("rolloutState") == "FAILED"
        ):
            reason = str(deployment.get("rolloutStateReason") or "").strip()
            return f"deployment {deployment.get('id')} of {revision} failed" + (f": {reason}" if reason else "")
    return None


def judge(
    view: ServiceView,
    findings: Sequence[Finding],
    verification: Verification,
    now: datetime,
    *,
    causes: Iterable[str],
    judged_by: str = "failures",
) -> tuple[Verdict | None, Verification]:
    """The verdict on a change, or None and the verification to keep watching with (when it became
    steady is remembered, so the settle window survives passes).

    `judged_by`: `failures` (new failures of the same cause), `capacity` (tasks still not placed once
    the capacity had time to arrive), or `rollout` (only steady state or the deadline: failures are
    expected to go on for a while, as when a circuit breaker lets a rollout fail, then rolls it back).
    """
    change = verification.change
    if judged_by == "capacity" and now >= verification.since:
        missing = shortfall(view)
        if missing:
            waited = (now - verification.applied_at).total_seconds()
            reason = f"{missing} task(s) still cannot be placed {waited:.0f} s after the change"
            return Verdict(Judgement.NOT_EFFECTIVE, reason, (reason,)), verification
    if judged_by == "failures":
        wanted = set(causes)
        failed = [
            f
            for f in evidence_after(findings, verification.since, verification.revision)
            if f.cause.value in wanted and f.source_kind is not SourceKind.DEPLOYMENT
        ]
        if len(failed) >= change.failures:
            evidence = tuple(line for f in failed[: change.failures] for line in (f.summary, *f.evidence[:1]))
            return Verdict(
                Judgement.NOT_EFFECTIVE,
                f"{len(failed)} failure(s) with the same cause after the change",
                evidence,
            ), verification
    failed_rollout = _failed_deployment(view, verification)
    if failed_rollout:
        return Verdict(Judgement.NOT_EFFECTIVE, failed_rollout, (failed_rollout,)), verification
    if view.steady:
        steady_since = verification.steady_since or now
        if now - steady_since >= timedelta(seconds=change.settle_seconds):
            settled = (now - steady_since).total_seconds()
            return Verdict(Judgement.VERIFIED, f"steady state for {settled:.0f} s after the change"), verification
        return None, replace(verification, steady_since=steady_since)
    if now >= verification.deadline:
        waited = (verification.deadline - verification.applied_at).total_seconds()
        return Verdict(
            Judgement.NOT_EFFECTIVE, f"not at steady state {waited:.0f} s after the change (the deadline)"
        ), verification
    return None, replace(verification, steady_since=None)
