"""Where the state lives: in the service's own tags, behind one small interface.

No extra infrastructure: the state sits next to what it is about, survives restarts and replicas, and
`aws ecs list-tags-for-resource` shows it. Reading costs nothing (DescribeServices already returned the
tags); writing is one TagResource (and an UntagResource when it shrinks), only when something changed,
and only on services the agent manages.

Every mode reads the same store every pass. What a replica decides but may not write (dry-run, a
standby, a write that failed) is kept in memory as a *delta on a version*: it is used only while the
stored state is still the version it was derived from. As soon as anyone else writes (the leader), the
delta is dropped and the stored state wins, so a standby that takes over never writes its own view over
the old leader's memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.state import EMPTY, ServiceState, decode_tags, is_state_key, tag_changes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from agent.actions.base import AwsApi
    from agent.model import ServiceView
    from agent.state import Problem


class StateNotSavedError(Exception):
    """The state could not be written; it is kept in memory and written again next pass."""


@dataclass(frozen=True, slots=True)
class Stored:
    state: ServiceState
    version: str  # identifies what the store holds now
    problems: tuple[Problem, ...] = ()


def _version(tags: Mapping[str, str]) -> str:
    ours = sorted((k, v) for k, v in tags.items() if is_state_key(k))
    return hashlib.sha256(repr(ours).encode()).hexdigest()[:16]


@dataclass
class TagStore:
    """State in `ecs-medic:state*` tags of the service."""

    aws: AwsApi
    _written: dict[str, dict[str, str]] = field(default_factory=dict)  # arn -> the state tags last written

    def load(self, view: ServiceView, now: datetime) -> Stored:
        """The state in the tags the pass observed (a new pass starts from them, not from what was written)."""
        self._written.pop(view.arn, None)
        tags = {k: v for k, v in view.tags.items() if is_state_key(k)}
        state, problems = decode_tags(tags, now)
        return Stored(state, _version(tags), problems)

    def version(self, view: ServiceView) -> str:
        """The version of the state as the pass observed it."""
        return _version({k: v for k, v in view.tags.items() if is_state_key(k)})

    def save(self, view: ServiceView, state: ServiceState, *, guard: Callable[[], None] | None = None) -> str:
        """Write `state`; returns the new version. Raises StateNotSavedError."""
        current = self._written.get(view.arn)
        if current is None:
            current = {k: v for k, v in view.tags.items() if is_state_key(k) or k.startswith("ecs-medic:action.")}
        to_set, to_remove = tag_changes(current, state)
        if not to_set and not to_remove:
            return _version(current)
        try:
            if to_set:
                tags = [{"key": key, "value": value} for key, value in to_set.items()]
                self.aws.call(
                    "ecs", "TagResource", {"resourceArn": view.arn, "tags": tags}, guard=guard, idempotent=True
                )
            if to_remove:
                self.aws.call(
                    "ecs",
                    "UntagResource",
                    {"resourceArn": view.arn, "tagKeys": to_remove},
                    guard=guard,
                    idempotent=True,
                )
        except Exception as error:
            self._written.pop(view.arn, None)
            raise StateNotSavedError(f"{type(error).__name__}: {error}") from error
        written = {k: v for k, v in current.items() if k not in to_remove}
        written.update(to_set)
        self._written[view.arn] = written
        return _version(written)


@dataclass
class Memory:
    """What this replica knows beyond the store: deltas on a stored version (see the module doc)."""

    _deltas: dict[str, tuple[str, ServiceState]] = field(default_factory=dict)

    def state(self, arn: str, stored: Stored) -> ServiceState:
        delta = self._deltas.get(arn)
        if delta is None:
            return stored.state
        version, state = delta
        if version != stored.version:
            del self._deltas[arn]  # someone wrote since: the store wins
            return stored.state
        return state

    def keep(self, arn: str, version: str, state: ServiceState) -> None:
        if state == EMPTY:
            self._deltas.pop(arn, None)
        else:
            self._deltas[arn] = (version, state)

    def forget(self, arn: str) -> None:
        self._deltas.pop(arn, None)

    def __contains__(self, arn: str) -> bool:
        return arn in self._deltas
