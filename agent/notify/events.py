"""What a notification says: one frozen record per change of state worth telling a person about.

The caller (the reconciler) builds a `Notification` when something changes: a proposal starts
waiting for approval, an action is applied, an action is judged, a cluster is paused or resumed, a
`notify` proposal carries a fix for a person. Its `key` names that change (proposal id and state), so
the same change submitted on every pass is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

# The channels a policy may name in `spec.notify`, as configured by the settings.
SNS = "sns"
WEBHOOK = "webhook"
POLICY_CHANNELS: tuple[str, ...] = (SNS, WEBHOOK)


class Kind(StrEnum):
    """What changed (the `event` label of the notification metric and the `event` SNS attribute)."""

    APPROVAL_NEEDED = "approval_needed"  # a proposal waits for `ecs-medic approve ID`
    PROPOSED = "proposed"  # a fix the agent would apply, shown only (dry-run, paused, not managed)
    APPLIED = "applied"  # an action changed the service
    VERDICT = "verdict"  # an applied action was judged (see Verdict)
    PAUSED = "paused"  # enforcement stopped in a cluster (storm guard, pause switch or tag)
    RESUMED = "resumed"  # enforcement came back in a cluster
    FIX_NEEDED = "fix_needed"  # a `notify` proposal: a fix no agent should apply alone


class Verdict(StrEnum):
    """What became of an applied action."""

    VERIFIED = "verified"  # the service reached steady state
    NOT_EFFECTIVE = "not_effective"  # it did not, within the verify timeout
    REVERTED = "reverted"  # the change was undone
    ESCALATED = "escalated"  # the agent stopped trying; a person takes over


class ChangeLike(Protocol):
    """Anything shaped like a plan's change (`agent.actions.base.Change` is one)."""

    @property
    def field(self) -> str: ...

    @property
    def current(self) -> Any: ...  # noqa: ANN401 - a field's value, of whatever type ECS gives it

    @property
    def desired(self) -> Any: ...  # noqa: ANN401


@dataclass(frozen=True, slots=True)
class Change:
    """One field an action changes (or would change): its value now, and the value wanted."""

    field: str
    current: Any
    desired: Any


# The outcome label a kind carries when the caller gives none.
_DEFAULT_OUTCOME = {
    Kind.APPROVAL_NEEDED: "awaiting_approval",
    Kind.PROPOSED: "proposed",
    Kind.APPLIED: "applied",
    Kind.PAUSED: "paused",
    Kind.RESUMED: "resumed",
    Kind.FIX_NEEDED: "proposed",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One change of state, with everything a person needs to act on it.

    `channels` routes it: the channel names a policy asked for (`spec.notify`), or every configured
    channel when empty. `outcome` defaults from the kind (the verdict's value for a verdict), and
    `approve_command` to `ecs-medic approve <proposal_id>` when approval is needed.
    """

    kind: Kind
    key: str  # the dedupe key: proposal id and state (or cluster and state), given by the caller
    cluster: str
    service: str = ""
    cause: str = ""
    action: str = ""
    policy: str = ""
    proposal_id: str = ""
    outcome: str = ""
    verdict: Verdict | None = None
    title: str = ""  # a one-line headline; derived from the kind when empty
    summary: str = ""  # what the action does or did, in a sentence
    evidence: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    commands: tuple[str, ...] = ()  # the equivalent `aws` commands
    approve_command: str = ""
    reason: str = ""  # why: waiting, skipped, paused, not effective...
    channels: tuple[str, ...] = ()
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        if self.verdict is not None:
            object.__setattr__(self, "verdict", Verdict(self.verdict))
        if not self.key:
            raise ValueError("a notification needs a dedupe key")
        if (self.kind is Kind.VERDICT) != (self.verdict is not None):
            raise ValueError("a verdict notification, and only one, carries a verdict")
        if not self.outcome:
            outcome = self.verdict.value if self.verdict is not None else _DEFAULT_OUTCOME[self.kind]
            object.__setattr__(self, "outcome", outcome)
        if self.kind is Kind.APPROVAL_NEEDED and not self.approve_command and self.proposal_id:
            object.__setattr__(self, "approve_command", f"ecs-medic approve {self.proposal_id}")
        # Accept a plan's own changes (any object with field/current/desired) and any iterables.
        object.__setattr__(self, "changes", tuple(_change(c) for c in self.changes))
        for name in ("evidence", "commands", "channels"):
            object.__setattr__(self, name, tuple(str(item) for item in getattr(self, name)))

    @property
    def subject(self) -> str:
        """`cluster/service`, or the cluster alone for cluster-wide events."""
        return f"{self.cluster}/{self.service}" if self.service else self.cluster

    def routed_to(self, configured: Iterable[str]) -> list[str]:
        """The configured channels this notification goes to."""
        return [name for name in configured if not self.channels or name in self.channels]


def _change(change: ChangeLike) -> Change:
    return change if isinstance(change, Change) else Change(change.field, change.current, change.desired)
