"""ACT: run a plan's calls exactly once, even across lost answers, kills and leader changes.

The reconciler records an intent (the change's token and its calls) before the first write. Then:

- Every call goes through `guard` (this replica may write) and stops at the change's deadline.
- A write whose answer was lost (`AmbiguousWriteError`) is never sent again blindly: its `expect`
  read says whether it happened (a service already at the value; a revision tagged with the change's
  token), and only if not is it sent again.
- Whoever later finds an intent whose deadline passed (the agent restarted, the leader changed)
  `recover`s it: reads which calls took effect, finishes the rest when it can, or undoes the part
  that was done (a registered revision nobody points at is deregistered).

Talks to AWS only through the `AwsApi` protocol; which calls to make is decided elsewhere.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from agent.actions.base import ApiCall, Ref
from agent.errors import AmbiguousWriteError, ChangeDeadlineError, LeaseLostError
from agent.state import CHANGE_TAG, CallRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from agent.actions.base import AwsApi

MAX_SENDS = 3  # a write sent this many times without taking effect is a failure, not a retry loop
STORED_PARAMS_LIMIT = 600  # characters: larger parameters (a whole task definition) are not kept in an intent
TAGGED_REVISIONS_SEARCHED = 10


class ChangeFailedError(Exception):
    """A call of a change failed for good; `done` calls took effect before it (they may need undoing)."""

    def __init__(self, message: str, *, done: int, outputs: Mapping[str, str]) -> None:
        super().__init__(message)
        self.done = done
        self.outputs = dict(outputs)


# --- calls as records --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:  # noqa: ANN401 - any API parameter value
    if isinstance(value, Ref):
        return {"$ref": value.name}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record(call: ApiCall) -> CallRecord:
    """A plan's call as data that survives a restart (all of it: `for_intent` trims what is stored)."""
    expect = None
    if call.expect is not None:
        e = call.expect
        expect = {
            "api": e.api,
            "operation": e.operation,
            "params": _jsonable(dict(e.params)),
            "path": e.path,
            "value": _jsonable(e.value),
            "match": e.match,
        }
    return CallRecord(
        api=call.api,
        operation=call.operation,
        params=_jsonable(dict(call.params)),
        expect=expect,
        outputs=dict(call.outputs),
        tag_change=call.tag_change,
    )


def for_intent(calls: Sequence[CallRecord]) -> tuple[CallRecord, ...]:
    """What an intent keeps of its calls: large parameters are dropped (such a call is only looked for)."""
    kept = []
    for call in calls:
        size = len(json.dumps(call.params, separators=(",", ":"), default=str))
        kept.append(call if size <= STORED_PARAMS_LIMIT else CallRecord(**{**_fields(call), "params": None}))
    return tuple(kept)


def _fields(call: CallRecord) -> dict[str, Any]:
    return {
        "api": call.api,
        "operation": call.operation,
        "params": call.params,
        "expect": call.expect,
        "outputs": call.outputs,
        "tag_change": call.tag_change,
    }


def resolve(value: Any, outputs: Mapping[str, str]) -> Any:  # noqa: ANN401 - any API parameter value
    """`{"$ref": name}` placeholders replaced by what earlier calls returned."""
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            name = str(value["$ref"])
            if name not in outputs:
                raise KeyError(f"no output {name!r} from an earlier call")
            return outputs[name]
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value


def at_path(document: Any, path: str) -> Any:  # noqa: ANN401 - a JSON document
    """`services[0].taskDefinition` in a response; None where the path does not exist."""
    current = document
    for part in path.replace("]", "").replace("[", ".").split("."):
        if not part:
            continue
        if isinstance(current, list) and part.isdigit():
            current = current[int(part)] if int(part) < len(current) else None
        elif isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current


def matches(actual: Any, expected: Any, how: str) -> bool:  # noqa: ANN401 - JSON values
    if how == "arn":
        return isinstance(actual, str) and isinstance(expected, str) and _revision(actual) == _revision(expected)
    if how == "subset":
        return _subset(actual, expected)
    return bool(actual == expected)


def _revision(task_definition: str) -> str:
    return task_definition.rsplit("/", 1)[-1]


def _subset(actual: Any, expected: Any) -> bool:  # noqa: ANN401 - JSON values
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(_subset(actual.get(k), v) for k, v in expected.items())
    return bool(actual == expected)


# --- running calls ---------------------------------------------------------------------------------


class Progress(StrEnum):
    COMPLETE = "complete"  # every call took effect
    NONE = "none"  # nothing took effect
    PARTIAL = "partial"  # the first `done` calls took effect, the rest did not


@dataclass(frozen=True, slots=True)
class Found:
    progress: Progress
    done: int
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Executor:
    """Runs calls for one change. `guard` raises when this replica may no longer write."""

    aws: AwsApi
    guard: Callable[[], None]
    monotonic: Callable[[], float] = time.monotonic

    def run(
        self,
        calls: Sequence[CallRecord],
        *,
        token: str,
        budget_seconds: float,
        start: int = 0,
        outputs: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Send `calls[start:]` in order; returns every output learnt. Raises `ChangeFailedError`, or
        `LeaseLostError` when this replica may no longer write."""
        deadline = self.monotonic() + budget_seconds
        learnt = dict(outputs or {})
        for index in range(start, len(calls)):
            try:
                learnt.update(self._one(calls[index], token=token, deadline=deadline, outputs=learnt))
            except LeaseLostError:
                raise  # not a failure of the change: whoever holds the lease now recovers it
            except Exception as error:
                raise ChangeFailedError(f"{type(error).__name__}: {error}", done=index, outputs=learnt) from error
        return learnt

    def _one(self, call: CallRecord, *, token: str, deadline: float, outputs: Mapping[str, str]) -> dict[str, str]:
        if call.params is None:
            raise ValueError(f"{call.api}:{call.operation} cannot be sent again: its parameters were not kept")
        params = resolve(call.params, outputs)
        if call.tag_change:
            params["tags"] = [*(params.get("tags") or []), {"key": CHANGE_TAG, "value": token}]
        for _ in range(MAX_SENDS):
            if self.monotonic() >= deadline:
                raise ChangeDeadlineError(f"{call.api}:{call.operation}: the change ran out of time")
            try:
                response = self.aws.call(call.api, call.operation, params, guard=self.guard)
            except AmbiguousWriteError:
                happened, found = self.happened(call, token=token, outputs=outputs)
                if happened:
                    return found
                continue
            return {name: str(at_path(response, path)) for name, path in call.outputs.items()}
        raise AmbiguousWriteError(f"{call.api}:{call.operation}: no answer after {MAX_SENDS} sends, and no effect")

    def happened(self, call: CallRecord, *, token: str, outputs: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
        """Whether `call` already took effect (and what it returned, where that can be read back)."""
        expect = call.expect
        if expect is None:
            return False, {}
        if expect["match"] == "tagged":
            arn = self._tagged(expect["params"], token)
            return arn is not None, dict.fromkeys(call.outputs, arn) if arn else {}
        try:
            params = resolve(expect["params"], outputs)
            wanted = resolve(expect["value"], outputs)
        except KeyError:
            return False, {}
        response = self.aws.call(expect["api"], expect["operation"], params)
        return matches(at_path(response, expect["path"]), wanted, expect["match"]), {}

    def _tagged(self, params: Mapping[str, Any], token: str) -> str | None:
        """The newest revisions of the family, looked at for the one tagged with this change's token."""
        listed = self.aws.call(
            "ecs", "ListTaskDefinitions", {**params, "sort": "DESC", "maxResults": TAGGED_REVISIONS_SEARCHED}
        )
        for arn in (listed.get("taskDefinitionArns") or [])[:TAGGED_REVISIONS_SEARCHED]:
            described = self.aws.call("ecs", "DescribeTaskDefinition", {"taskDefinition": arn, "include": ["TAGS"]})
            tags = {t.get("key"): t.get("value") for t in described.get("tags") or []}
            if tags.get(CHANGE_TAG) == token:
                return str(arn)
        return None

    def find(self, calls: Sequence[CallRecord], *, token: str) -> Found:
        """How far a change got, read from AWS: which of its calls took effect, in order."""
        outputs: dict[str, str] = {}
        done = 0
        for call in calls:
            happened, found = self.happened(call, token=token, outputs=outputs)
            if not happened:
                break
            outputs.update(found)
            done += 1
        if done == len(calls):
            return Found(Progress.COMPLETE, done, outputs)
        if done == 0:
            return Found(Progress.NONE, 0, outputs)
        return Found(Progress.PARTIAL, done, outputs)
