"""What the agent must remember about a service across passes, restarts and leader changes.

One model for every mode: the change it is about to make (`intent`, written before the first write),
the change it is watching (`verifying`), the remediation episode it is driving (`episode`: attempts,
escalation step, history of verdicts), cooldowns (`actions`), revisions known to be good or bad, the
proposal waiting for approval, and the notifications already sent. Pure: encoding, decoding and
validation live here; where it is kept is `agent.store`'s business.

Everything read back is checked before it is believed: a record that does not parse, a time in the
future beyond clock skew, a counter past its bound or a deadline further out than the agent would
ever set is dropped with a problem that names it, never fatal. Losing one record costs at most one
cooldown; a crash loop would cost every service.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

from pydantic import Field, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "ecs-medic:"
STATE_TAG = PREFIX + "state"  # the state, in one or more tags: ecs-medic:state, ecs-medic:state.2, ...
CHANGE_TAG = PREFIX + "change"  # on a resource the agent created: the token of the change that made it
PAUSED = PREFIX + "paused"  # on a cluster: its value is the reason
LEGACY_KEYS = ("last-good", "bad-revisions", "pending", "approved", "verify")  # 0.1 kept one record per tag
TAG_VALUE_LIMIT = 256
MAX_STATE_TAGS = 8
FORMAT = "v2"

CLOCK_SKEW = timedelta(minutes=5)
MAX_ATTEMPTS = 100
MAX_HISTORY = 8
MAX_BAD_REVISIONS = 20
MAX_NOTIFIED = 16
MAX_CHANGE_SECONDS = 900  # an intent's deadline is never further out than this from its start
MAX_VERIFY_SECONDS = 7 * 86400

Count = Annotated[int, Field(ge=0, le=MAX_ATTEMPTS)]
Text = Annotated[str, Field(max_length=512)]


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """The last time an action was applied to a service, and how it went (cooldowns read this)."""

    last_at: datetime
    attempts: Count
    outcome: Text
    proposal_id: Text


@dataclass(frozen=True, slots=True)
class Pending:
    """A proposal waiting for approval (`ecs-medic approve ID`)."""

    proposal_id: Text
    since: datetime


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One field a change set: before and after (JSON values)."""

    field: Text
    current: Any
    desired: Any


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One API call of an intent, as much of it as recovery needs: what to send (None when too large
    to keep: such a call is never sent again, only looked for) and how to tell it happened."""

    api: Text
    operation: Text
    params: dict[str, Any] | None
    expect: dict[str, Any] | None
    outputs: dict[str, str] = field(default_factory=dict)
    tag_change: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """A change the agent makes to a service, from its intent to its verdict.

    `token` identifies it everywhere (the intent, the tag on anything it creates, the verdict).
    `revert` says whether a verdict of not effective undoes it; `reverts` names the token of the
    change this one undoes (a revert is never itself reverted). `revision` is the task definition new
    tasks should run after it, when the change sets one.
    """

    token: Text
    action: Text
    policy: Text
    proposal_id: Text
    cause: Text
    step: Count
    changes: tuple[ChangeRecord, ...]
    revert: bool = False
    reverts: Text | None = None
    supersedes: Text | None = None  # the token of a change of the same action this one replaces
    settle_seconds: Annotated[float, Field(ge=0, le=86400)] = 60.0
    failures: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = 1
    verify_seconds: Annotated[float, Field(gt=0, le=MAX_VERIFY_SECONDS)] = 600.0
    quiet_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0


@dataclass(frozen=True, slots=True)
class Intent:
    """Written before the first write of a change: what is about to happen, by whom, until when.

    `fence` is the leadership token (the lease version) of the writer: a change started under an
    older token is never continued by that writer once a newer one exists. Nothing of an intent is
    sent after `deadline`; whoever finds it later recovers it: finishes it or cleans it up.
    """

    change: Change
    calls: tuple[CallRecord, ...]
    holder: Text
    fence: Annotated[int, Field(ge=0)]
    started: datetime
    deadline: datetime


@dataclass(frozen=True, slots=True)
class Verification:
    """An applied change being judged: evidence counts only from tasks started after `since`."""

    change: Change
    applied_at: datetime
    since: datetime
    deadline: datetime
    outputs: dict[str, str] = field(default_factory=dict)
    revision: Text | None = None
    steady_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One step of an episode's history: a change and its verdict, with the evidence that decided it."""

    token: Text
    action: Text
    step: Count
    at: datetime
    outcome: Text
    summary: Text = ""
    evidence: tuple[Text, ...] = ()


@dataclass(frozen=True, slots=True)
class Episode:
    """A policy driving one service back to health: which step of its ladder, how many attempts at it,
    and what each attempt did. Ends when a change is verified; `exhausted` when every step failed.

    `undo` is a change judged not effective that is to be undone: undone at once when the episode moves
    to another action, or superseded by the next attempt of the same action, which cleans up after it
    (so two memory raises are two changes to the service, not raise, undo, raise).
    """

    policy: Text
    cause: Text
    started: datetime
    step: Count = 0
    attempts: Count = 0
    history: tuple[Attempt, ...] = ()
    exhausted: bool = False
    undo: Verification | None = None


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Everything the agent remembers about one service."""

    last_good: Text | None = None  # family:revision that last reached steady state
    bad_revisions: tuple[Text, ...] = ()  # revisions a rollback must never return to
    actions: dict[str, ActionRecord] = field(default_factory=dict)
    pending: Pending | None = None
    episode: Episode | None = None
    verifying: Verification | None = None
    intent: Intent | None = None
    changed_at: datetime | None = None  # the last time the agent changed the service
    notified: tuple[Text, ...] = ()  # notification keys already sent, newest last

    def with_action(self, action: str, record: ActionRecord) -> ServiceState:
        return replace(self, actions={**self.actions, action: record})

    def with_notified(self, key: str) -> ServiceState:
        kept = tuple(k for k in self.notified if k != key)
        return replace(self, notified=(*kept, key)[-MAX_NOTIFIED:])

    @property
    def empty(self) -> bool:
        return self == ServiceState()


EMPTY = ServiceState()
_FIELDS = {f.name: f for f in fields(ServiceState)}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _adapter(name: str) -> TypeAdapter[Any]:
    if name not in _ADAPTERS:
        hints = get_type_hints(ServiceState, include_extras=True)
        _ADAPTERS[name] = TypeAdapter(hints[name])
    return _ADAPTERS[name]


@dataclass(frozen=True, slots=True)
class Problem:
    """A part of the recorded state that was not believed, and why."""

    where: str  # the tag, or the tag and field
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


# --- encoding ------------------------------------------------------------------------------------------


def to_json(state: ServiceState) -> dict[str, Any]:
    """The state as a JSON document (only the fields that differ from an empty state)."""
    document: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(state, name)
        if value != getattr(EMPTY, name):
            document[name] = _adapter(name).dump_python(value, mode="json")
    return document


def encode_tags(state: ServiceState) -> dict[str, str]:
    """The tags that record `state`: compact JSON, compressed, base64 (ECS tag values allow `+/=`),
    split over as many `ecs-medic:state` tags as it takes. The first says how many there are."""
    if state.empty:
        return {}
    text = json.dumps(to_json(state), separators=(",", ":"), sort_keys=True)
    data = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    header = f"{FORMAT} {{count}} {zlib.crc32(data.encode()):08x} "
    first = TAG_VALUE_LIMIT - len(header.format(count=9))
    chunks = [data[:first]] + [data[i : i + TAG_VALUE_LIMIT] for i in range(first, len(data), TAG_VALUE_LIMIT)]
    if len(chunks) > MAX_STATE_TAGS:
        raise ValueError(f"state needs {len(chunks)} tags, more than {MAX_STATE_TAGS}")
    tags = {STATE_TAG: header.format(count=len(chunks)) + chunks[0]}
    tags.update({f"{STATE_TAG}.{index + 1}": chunk for index, chunk in enumerate(chunks[1:], start=1)})
    return tags


def is_state_key(key: str) -> bool:
    return key == STATE_TAG or key.startswith(STATE_TAG + ".") or key in {PREFIX + k for k in LEGACY_KEYS}


# --- decoding and validation ---------------------------------------------------------------------------


def decode_tags(tags: Mapping[str, str], now: datetime) -> tuple[ServiceState, tuple[Problem, ...]]:
    """The state recorded in `tags`, with every part that could not be believed left out and named."""
    header = tags.get(STATE_TAG)
    if header is None:
        return _legacy(tags)
    try:
        version, count, checksum, first = header.split(" ", 3)
        if version != FORMAT:
            return EMPTY, (Problem(STATE_TAG, f"format {version!r} is not {FORMAT!r}"),)
        parts = [first] + [tags.get(f"{STATE_TAG}.{i}", "") for i in range(2, int(count) + 1)]
        data = "".join(parts)
        if f"{zlib.crc32(data.encode()):08x}" != checksum:
            return EMPTY, (Problem(STATE_TAG, "checksum mismatch: the state tags were edited or are incomplete"),)
        document = json.loads(zlib.decompress(base64.b64decode(data, validate=True)).decode())
    except (ValueError, zlib.error, UnicodeDecodeError) as error:
        return EMPTY, (Problem(STATE_TAG, f"unreadable: {error}"),)
    if not isinstance(document, dict):
        return EMPTY, (Problem(STATE_TAG, "not a JSON object"),)
    return from_json(document, now, where=STATE_TAG)


def from_json(document: Mapping[str, Any], now: datetime, *, where: str) -> tuple[ServiceState, tuple[Problem, ...]]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, raw in document.items():
        if name not in _FIELDS:
            problems.append(Problem(f"{where} {name}", "unknown field, ignored"))
            continue
        try:
            values[name] = _adapter(name).validate_python(raw)
        except ValidationError as error:
            first = error.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            problems.append(Problem(f"{where} {name}{'.' + path if path else ''}", first["msg"]))
    state, more = sanitize(ServiceState(**values), now, where=where)
    return state, (*problems, *more)


def sanitize(state: ServiceState, now: datetime, *, where: str = STATE_TAG) -> tuple[ServiceState, tuple[Problem, ...]]:
    """Drop what the agent would never have written: times in the future beyond clock skew, deadlines
    further out than any it sets, too many entries. Each drop is a problem naming the field."""
    problems: list[Problem] = []
    latest = now + CLOCK_SKEW

    def future(name: str, moment: datetime | None) -> bool:
        if moment is not None and _aware(moment) > latest:
            problems.append(Problem(f"{where} {name}", f"{moment.isoformat()} is in the future"))
            return True
        return False

    actions = {k: v for k, v in state.actions.items() if not future(f"actions.{k}.last_at", v.last_at)}
    pending = None if state.pending and future("pending.since", state.pending.since) else state.pending
    changed_at = None if future("changed_at", state.changed_at) else state.changed_at
    episode = state.episode
    if episode is not None and (
        future("episode.started", episode.started) or any(future("episode.history", a.at) for a in episode.history)
    ):
        episode = None
    verifying = state.verifying
    if verifying is not None:
        longest = timedelta(seconds=verifying.change.verify_seconds) + CLOCK_SKEW
        if future("verifying.applied_at", verifying.applied_at):
            verifying = None
        elif verifying.deadline - verifying.applied_at > longest:
            problems.append(Problem(f"{where} verifying.deadline", "further out than the change's verification time"))
            verifying = None
    intent = state.intent
    if intent is not None:
        if future("intent.started", intent.started):
            intent = None
        elif intent.deadline - intent.started > timedelta(seconds=MAX_CHANGE_SECONDS):
            problems.append(Problem(f"{where} intent.deadline", f"more than {MAX_CHANGE_SECONDS} s after its start"))
            intent = None
    clean = replace(
        state,
        actions=actions,
        pending=pending,
        changed_at=changed_at,
        episode=replace(episode, history=episode.history[-MAX_HISTORY:]) if episode else None,
        verifying=verifying,
        intent=intent,
        bad_revisions=state.bad_revisions[-MAX_BAD_REVISIONS:],
        notified=state.notified[-MAX_NOTIFIED:],
    )
    return clean, tuple(problems)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _legacy(tags: Mapping[str, str]) -> tuple[ServiceState, tuple[Problem, ...]]:
    """Revisions remembered by 0.1's one-record-per-tag format; the rest of it is not carried over."""
    last_good = tags.get(PREFIX + "last-good") or None
    bad = tuple((tags.get(PREFIX + "bad-revisions") or "").split())
    return ServiceState(last_good=last_good, bad_revisions=bad[-MAX_BAD_REVISIONS:]), ()


def tag_changes(current: Mapping[str, str], state: ServiceState) -> tuple[dict[str, str], list[str]]:
    """(tags to set, tag keys to remove) to go from `current` to recording `state`; only differences.
    Approval tags are written by approvers and never touched here."""
    wanted = encode_tags(state)
    ours = {k: v for k, v in current.items() if is_state_key(k) or k.startswith(PREFIX + "action.")}
    to_set = {k: v for k, v in wanted.items() if ours.get(k) != v}
    to_remove = sorted(k for k in ours if k not in wanted)
    return to_set, to_remove
