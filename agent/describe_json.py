"""Load JSON as `aws ecs describe-tasks` / `describe-services` / `run-task` print it.

Input is checked for shape before anything reads it, and every problem is reported at its file, line
and column, with the path of the offending field, so a person can fix a hand-edited file. Several
documents may be concatenated (`(aws ecs describe-services ...; aws ecs describe-tasks ...) | ...`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from json.decoder import scanstring  # type: ignore[attr-defined]  # public, but not in typeshed
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class InputError(ValueError):
    """Input that is not JSON or not shaped like ECS output, located at file, line and column."""

    def __init__(self, source: str, line: int, column: int, problem: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {problem}")
        self.source = source
        self.line = line
        self.column = column
        self.problem = problem


class _Shape(BaseModel):
    """Only the fields the diagnosis reads are checked; everything else ECS adds passes through."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel)


Timestamp = datetime | float | str | None


class _Container(_Shape):
    name: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    image: str | None = None


class _Task(_Shape):
    task_arn: str
    cluster_arn: str | None = None
    group: str | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    last_status: str | None = None
    desired_status: str | None = None
    started_at: Timestamp = None
    stopped_at: Timestamp = None
    containers: list[_Container] = []


class _Event(_Shape):
    id: str | None = None
    message: str
    created_at: Timestamp = None


class _Deployment(_Shape):
    id: str
    status: str | None = None
    rollout_state: str | None = None
    rollout_state_reason: str | None = None
    failed_tasks: int | None = None
    task_definition: str | None = None


class _Service(_Shape):
    service_name: str
    cluster_arn: str | None = None
    events: list[_Event] = []
    deployments: list[_Deployment] = []
    health_check_grace_period_seconds: int | None = None
    deployment_configuration: dict[str, Any] | None = None
    load_balancers: list[dict[str, Any]] = []


class _Failure(_Shape):
    arn: str | None = None
    reason: str | None = None
    detail: str | None = None


class _Document(_Shape):
    tasks: list[_Task] = []
    services: list[_Service] = []
    failures: list[_Failure] = []


@dataclass
class EcsDocument:
    """The tasks, services and failures of one or more describe-* outputs, as plain dicts."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


_TOP_LEVEL_KEYS = ("tasks", "services", "failures")
_DECODER = json.JSONDecoder()
# describe-* output for one service (100 stopped tasks, its events) is a few MiB; this bounds memory.
MAX_INPUT_CHARS = 64 * 2**20
# ECS output nests about ten levels; far deeper input is not ECS output and would exhaust the stack.
MAX_DEPTH = 64
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _offset_of(text: str, start: int, path: tuple[int | str, ...]) -> int:
    """Where the value at `path` starts, walking the JSON text itself (used only to report errors)."""
    index = _skip_space(text, start)
    for step in path:
        opener = text[index] if index < len(text) else ""
        if isinstance(step, str) and opener == "{":
            object_start = index
            index = _skip_space(text, index + 1)
            while index < len(text) and text[index] == '"':
                key, index = scanstring(text, index + 1)
                index = _skip_space(text, _skip_space(text, index) + 1)  # past the colon
                if key == step:
                    break
                _, index = _DECODER.raw_decode(text, index)
                index = _skip_space(text, index)
                index = _skip_space(text, index + 1) if index < len(text) and text[index] == "," else index
            else:
                return object_start  # a missing field: point at the object that lacks it
        elif isinstance(step, int) and opener == "[":
            index = _skip_space(text, index + 1)
            for _ in range(step):
                _, index = _DECODER.raw_decode(text, index)
                index = _skip_space(text, _skip_space(text, index) + 1)
        else:
            return index
    return index


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for step in loc:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _check(document: object, text: str, start: int, source: str) -> EcsDocument:
    if not isinstance(document, dict) or not any(key in document for key in _TOP_LEVEL_KEYS):
        line, column = _line_column(text, _skip_space(text, start))
        raise InputError(
            source,
            line,
            column,
            "expected an object with `tasks`, `services` or `failures` (the output of "
            "`aws ecs describe-tasks` or `aws ecs describe-services`)",
        )
    try:
        _Document.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(first["loc"])
        line, column = _line_column(text, _offset_of(text, start, loc))
        got = first.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {json.dumps(got)})"
        raise InputError(source, line, column, f"{_path(loc)}: {first['msg'].lower()}{shown}") from None
    return EcsDocument(
        tasks=list(document.get("tasks") or []),
        services=list(document.get("services") or []),
        failures=list(document.get("failures") or []),
    )


def _check_depth(text: str, source: str) -> None:
    """Refuse input nested deeper than MAX_DEPTH before the (recursive) decoder sees it."""
    depth = 0
    for match in _STRUCTURE.finditer(text):
        piece = match.group()
        if piece in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _line_column(text, match.start())
                raise InputError(
                    source, line, column, f"nested deeper than {MAX_DEPTH} levels: this is not describe-* output"
                )
        elif piece in "]}":
            depth -= 1


def parse_describe_output(text: str, source: str = "<input>") -> EcsDocument:
    """Parse one or more concatenated describe-* JSON documents; raise InputError where they are wrong."""
    merged = EcsDocument()
    index = _skip_space(text, 0)
    if index >= len(text):
        raise InputError(source, 1, 1, "the input is empty")
    if len(text) > MAX_INPUT_CHARS:
        raise InputError(source, 1, 1, f"larger than {MAX_INPUT_CHARS // 2**20} MiB: split the input")
    _check_depth(text, source)
    while index < len(text):
        try:
            document, end = _DECODER.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise InputError(source, error.lineno, error.colno, f"not valid JSON: {error.msg.lower()}") from None
        part = _check(document, text, index, source)
        merged.tasks += part.tasks
        merged.services += part.services
        merged.failures += part.failures
        index = _skip_space(text, end)
    return merged
