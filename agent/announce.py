"""Which changes of state a pass tells people about. Pure: decisions in, notifications out.

Once per change of state, never once per pass: each notification's key names the change (a proposal
and its state, a change's token and its verdict, a cluster entering or leaving a pause), and the
reconciler records the keys it sent with the service's state, so a key is sent once across passes
and restarts. A standby replica announces nothing: the leader does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.decide import Kind as ProposalKind
from agent.decide import Outcome
from agent.notify.events import Change, Kind, Notification, Verdict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from agent.decide import Decision, Proposal
    from agent.policy.loader import PolicySet


def _channels(policies: PolicySet, name: str) -> tuple[str, ...]:
    policy = next((p for p in policies.policies if p.name == name), None)
    return tuple(policy.policy.spec.notify) if policy is not None else ()


def _about(proposal: Proposal, kind: Kind, key: str, channels: tuple[str, ...], now: datetime) -> Notification:
    return Notification(
        kind=kind,
        key=key,
        cluster=proposal.cluster,
        service=proposal.service,
        cause=proposal.cause,
        action=proposal.action,
        policy=proposal.policy,
        proposal_id=proposal.id,
        verdict=Verdict.REVERTED if kind is Kind.VERDICT else None,
        summary=proposal.plan.summary,
        evidence=proposal.evidence,
        changes=tuple(Change(c.field, c.current, c.desired) for c in proposal.plan.changes),
        commands=proposal.plan.commands,
        reason=proposal.reason,
        channels=channels,
        occurred_at=now,
    )


def of_proposal(decision: Decision, channels: tuple[str, ...], now: datetime) -> Notification | None:
    """The notification a proposal's state deserves, if any."""
    proposal = decision.proposal
    if proposal is None:
        return None
    outcome = proposal.outcome
    token = decision.change.token if decision.change is not None else ""
    if proposal.action == "notify" and outcome in (Outcome.APPLIED, Outcome.PROPOSED):
        return _about(proposal, Kind.FIX_NEEDED, f"{proposal.id}:fix_needed", channels, now)
    if outcome is Outcome.AWAITING_APPROVAL:
        return _about(proposal, Kind.APPROVAL_NEEDED, f"{proposal.id}:awaiting_approval", channels, now)
    if outcome is Outcome.REVERTED or (outcome is Outcome.APPLIED and proposal.kind is ProposalKind.REVERT):
        return _about(proposal, Kind.VERDICT, f"{token}:reverted", channels, now)
    if outcome is Outcome.APPLIED:
        return _about(proposal, Kind.APPLIED, f"{proposal.id}:applied:{token}", channels, now)
    if outcome is Outcome.PROPOSED and proposal.plan.mutates:
        return _about(proposal, Kind.PROPOSED, f"{proposal.id}:proposed", channels, now)
    return None


def of_decision(decision: Decision, policies: PolicySet, now: datetime) -> list[Notification]:
    """A service's notifications this pass: its proposal's state, a verdict reached, an escalation."""
    view = decision.assessment.view
    found: list[Notification] = []
    judged = decision.judged
    if judged is not None:
        change = judged.verification.change
        found.append(
            Notification(
                kind=Kind.VERDICT,
                key=f"{change.token}:{judged.outcome.value}",
                cluster=view.cluster,
                service=view.name,
                cause=change.cause.split(",")[0],
                action=change.action,
                policy=change.policy,
                proposal_id=change.proposal_id,
                verdict=Verdict(judged.outcome.value),
                summary=judged.verdict.reason,
                evidence=judged.verdict.evidence,
                changes=(),
                reason=judged.verdict.reason,
                channels=_channels(policies, change.policy),
                occurred_at=now,
            )
        )
    episode = decision.state.episode
    for step in decision.escalations:
        policy = decision.proposal.policy if decision.proposal else (episode.policy if episode else "")
        found.append(
            Notification(
                kind=Kind.VERDICT,
                key=f"{view.arn}:{episode.started.isoformat() if episode else ''}:{step}",
                cluster=view.cluster,
                service=view.name,
                cause=episode.cause.split(",")[0] if episode else "",
                policy=policy,
                verdict=Verdict.ESCALATED,
                summary=f"escalated: {step}",
                reason="the earlier steps did not bring the service back",
                channels=_channels(policies, policy),
                occurred_at=now,
            )
        )
    proposal = decision.proposal
    if proposal is not None:
        made = of_proposal(decision, _channels(policies, proposal.policy), now)
        if made is not None:
            found.append(made)
    return found


def of_clusters(paused: Mapping[str, str], was_paused: Iterable[str], now: datetime) -> list[Notification]:
    """Clusters entering or leaving a pause (storm guard, pause switch or tag) since the last pass."""
    before = set(was_paused)
    entered = [
        Notification(
            kind=Kind.PAUSED,
            key=f"paused:{cluster}:{now.isoformat()}",
            cluster=cluster,
            reason=paused[cluster],
            summary=f"enforcement paused in {cluster}: {paused[cluster]}",
            occurred_at=now,
        )
        for cluster in sorted(set(paused) - before)
    ]
    left = [
        Notification(
            kind=Kind.RESUMED,
            key=f"resumed:{cluster}:{now.isoformat()}",
            cluster=cluster,
            summary=f"enforcement resumed in {cluster}",
            occurred_at=now,
        )
        for cluster in sorted(before - set(paused))
    ]
    return entered + left
