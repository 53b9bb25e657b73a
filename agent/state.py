"""What the agent must remember across passes and restarts, kept in tags on the service itself.

No extra infrastructure: the state lives next to what it is about, survives restarts and replicas,
and an operator can read (or clear) it with `aws ecs list-tags-for-resource`. ECS tag values allow
only letters, digits, spaces and `_ . : / = + - @`, at most 256 characters, so records are short
`/`-separated fields. A tag that cannot be read is ignored, never fatal: losing one record costs at
most one cooldown, while a crash loop would cost every service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "ecs-medic:"
LAST_GOOD = PREFIX + "last-good"
BAD_REVISIONS = PREFIX + "bad-revisions"
PENDING = PREFIX + "pending"
APPROVED = PREFIX + "approved"
VERIFY = PREFIX + "verify"
ACTION_PREFIX = PREFIX + "action."
PAUSED = PREFIX + "paused"  # on a cluster: its value is the reason
TAG_VALUE_LIMIT = 256


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _moment(text: str) -> datetime:
    return datetime.fromtimestamp(int(text), tz=UTC)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """The last time an action was applied to a service, and how it went."""

    last_at: datetime
    attempts: int  # consecutive attempts in the current episode (reset when one is verified)
    outcome: str
    proposal_id: str

    def encode(self) -> str:
        return f"{_epoch(self.last_at)}/{self.attempts}/{self.outcome}/{self.proposal_id}"

    @classmethod
    def decode(cls, text: str) -> ActionRecord:
        at, attempts, outcome, proposal_id = text.split("/")
        return cls(_moment(at), int(attempts), outcome, proposal_id)


@dataclass(frozen=True, slots=True)
class Pending:
    """A proposal waiting for approval (`ecs-medic approve ID`)."""

    proposal_id: str
    since: datetime

    def encode(self) -> str:
        return f"{self.proposal_id}/{_epoch(self.since)}"

    @classmethod
    def decode(cls, text: str) -> Pending:
        proposal_id, since = text.split("/")
        return cls(proposal_id, _moment(since))


@dataclass(frozen=True, slots=True)
class Approval:
    proposal_id: str
    expires: datetime

    def encode(self) -> str:
        return f"{self.proposal_id}/{_epoch(self.expires)}"

    @classmethod
    def decode(cls, text: str) -> Approval:
        proposal_id, expires = text.split("/")
        return cls(proposal_id, _moment(expires))


@dataclass(frozen=True, slots=True)
class Verification:
    """An applied action whose effect is being watched until its deadline."""

    action: str
    policy: str
    proposal_id: str
    started: datetime
    deadline: datetime

    def encode(self) -> str:
        return f"{self.action}/{self.policy}/{self.proposal_id}/{_epoch(self.started)}/{_epoch(self.deadline)}"

    @classmethod
    def decode(cls, text: str) -> Verification:
        action, policy, proposal_id, started, deadline = text.split("/")
        return cls(action, policy, proposal_id, _moment(started), _moment(deadline))


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Everything the agent remembers about one service."""

    last_good: str | None = None  # family:revision that last reached steady state
    bad_revisions: tuple[str, ...] = ()  # revisions a rollback must never return to
    actions: Mapping[str, ActionRecord] = field(default_factory=dict)
    pending: Pending | None = None
    approved: Approval | None = None
    verifying: Verification | None = None
    unreadable: tuple[str, ...] = ()  # tag keys that could not be read (reported, then overwritten)

    def with_action(self, action: str, record: ActionRecord) -> ServiceState:
        return replace(self, actions={**self.actions, action: record})


def read_state(tags: Mapping[str, str]) -> ServiceState:
    """The state recorded in a service's tags; unreadable records are skipped and named."""
    state = ServiceState()
    unreadable: list[str] = []
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        try:
            if key == LAST_GOOD:
                state = replace(state, last_good=value or None)
            elif key == BAD_REVISIONS:
                state = replace(state, bad_revisions=tuple(value.split()))
            elif key == PENDING:
                state = replace(state, pending=Pending.decode(value))
            elif key == APPROVED:
                state = replace(state, approved=Approval.decode(value))
            elif key == VERIFY:
                state = replace(state, verifying=Verification.decode(value))
            elif key.startswith(ACTION_PREFIX):
                state = state.with_action(key.removeprefix(ACTION_PREFIX), ActionRecord.decode(value))
        except (ValueError, OverflowError, OSError):
            unreadable.append(key)
    return replace(state, unreadable=tuple(unreadable))


def state_tags(state: ServiceState) -> dict[str, str]:
    """The tags that record `state` (only `ecs-medic:` state keys)."""
    tags: dict[str, str] = {}
    if state.last_good:
        tags[LAST_GOOD] = state.last_good
    if state.bad_revisions:
        kept: list[str] = []
        for revision in reversed(state.bad_revisions):  # newest last: keep the newest that fit
            if len(" ".join([revision, *kept])) > TAG_VALUE_LIMIT:
                break
            kept.insert(0, revision)
        tags[BAD_REVISIONS] = " ".join(kept)
    if state.pending:
        tags[PENDING] = state.pending.encode()
    if state.approved:
        tags[APPROVED] = state.approved.encode()
    if state.verifying:
        tags[VERIFY] = state.verifying.encode()
    for action, record in state.actions.items():
        tags[ACTION_PREFIX + action] = record.encode()
    return tags


def tag_changes(current: Mapping[str, str], state: ServiceState) -> tuple[dict[str, str], list[str]]:
    """(tags to set, tag keys to remove) to go from `current` to recording `state`; only differences."""
    wanted = state_tags(state)
    ours = {k: v for k, v in current.items() if k.startswith(PREFIX) and k != PAUSED}
    to_set = {k: v for k, v in wanted.items() if ours.get(k) != v}
    to_remove = sorted(k for k in ours if k not in wanted and _is_state_key(k))
    return to_set, to_remove


def _is_state_key(key: str) -> bool:
    return key in {LAST_GOOD, BAD_REVISIONS, PENDING, APPROVED, VERIFY} or key.startswith(ACTION_PREFIX)
