"""Load policy files and folders; refuse bad ones with the file, line, policy and field named.

Errors list the valid choices (causes, actions, fields), because the person reading them is editing
YAML by hand. Every problem in every file is reported at once, not just the first.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ValidationError

from agent.actions import REGISTRY
from agent.actions.base import Params
from agent.policy.schema import Policy

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One problem, located: `file:line:column: policy NAME: field.path: message`."""

    file: str
    line: int
    column: int
    policy: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}:{self.column}: policy {self.policy}: {where}{self.message}"


class PolicyLoadError(Exception):
    """Policies that cannot be used, with every problem found."""

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = tuple(errors)


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    params: Params  # the remediation's params, checked against the action's schema
    source: str
    escalation_params: tuple[Params, ...] = ()  # each escalation step's params, checked likewise

    @property
    def name(self) -> str:
        return self.policy.name


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[LoadedPolicy, ...]
    files: tuple[str, ...]


def policy_files(path: Path) -> list[Path]:
    """The policy files at `path`: the file itself, or the folder's *.yaml / *.yml, sorted."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file())
    return [path]


def _node_at(node: yaml.Node | None, path: Sequence[int | str], *, key: bool = False) -> yaml.Node | None:
    """The YAML node at a field path (its key node if `key`), or the deepest existing parent."""
    for index, step in enumerate(path):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == step), None)
            if pair is not None:
                child = pair[0] if key and index == len(path) - 1 else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            child = node.value[step]
        if child is None:
            return node
        node = child
    return node


def _model_at(path: Sequence[int | str], action: str | None) -> type[BaseModel] | None:
    """The schema model that owns the field at `path`, to list its valid fields."""
    if list(path[:3]) == ["spec", "remediation", "params"]:
        return REGISTRY[action].params_model if action in REGISTRY else None
    if len(path) >= 4 and list(path[:2]) == ["spec", "escalation"] and path[3] == "params":
        return REGISTRY[action].params_model if action in REGISTRY else None
    model: type[BaseModel] | None = Policy
    for step in path:
        if model is None or not isinstance(step, str):
            continue
        field = next((f for name, f in model.model_fields.items() if step in (name, f.alias)), None)
        annotation = field.annotation if field else None
        candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _field_names(model: type[BaseModel]) -> str:
    return ", ".join(field.alias or name for name, field in model.model_fields.items())


@dataclass(frozen=True, slots=True)
class _Document:
    """One YAML document being checked: where it is, and the names to report problems under."""

    file: str
    root: yaml.Node | None
    name: str
    action: str | None


def _problems(error: ValidationError, prefix: tuple[int | str, ...], document: _Document) -> list[PolicyError]:
    problems = []
    for detail in error.errors():
        loc = prefix + tuple(detail["loc"])
        node = _node_at(document.root, loc, key=detail["type"] == "extra_forbidden")
        mark = node.start_mark if node is not None else None
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "string_pattern_mismatch" and loc[-2:] == ("metadata", "name"):
            message = "a name is 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        if detail["type"] == "extra_forbidden":
            owner = _model_at(loc[:-1], document.action)
            message = f"unknown field {loc[-1]!r}" + (f"; valid fields: {_field_names(owner)}" if owner else "")
        elif detail["type"] == "missing":
            message = "required field is missing"
        elif "input" in detail and not isinstance(detail["input"], dict | list) and str(detail["input"]) not in message:
            message += f" (got {detail['input']!r})"
        problems.append(
            PolicyError(
                file=document.file,
                line=mark.line + 1 if mark else 1,
                column=mark.column + 1 if mark else 1,
                policy=document.name,
                field=".".join(str(step) if isinstance(step, str) else f"[{step}]" for step in loc).replace(".[", "["),
                message=message,
            )
        )
    return problems


def _load_document(
    data: object, root: yaml.Node | None, file: str, index: int
) -> tuple[LoadedPolicy | None, list[PolicyError]]:
    fallback = f"<document {index + 1}>"
    if not isinstance(data, dict):
        mark = root.start_mark if root is not None else None
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [PolicyError(file, line, column, fallback, "", "expected a RemediationPolicy mapping")]
    metadata = data.get("metadata")
    name = str(metadata.get("name")) if isinstance(metadata, dict) and metadata.get("name") else fallback
    spec = data.get("spec")
    remediation = spec.get("remediation") if isinstance(spec, dict) else None
    action = remediation.get("action") if isinstance(remediation, dict) else None
    document = _Document(file, root, name, action if isinstance(action, str) else None)
    problems: list[PolicyError] = []
    policy = params = None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        problems += _problems(error, (), document)
    if document.action in REGISTRY and isinstance(remediation, dict):
        try:
            params = REGISTRY[document.action].params_model.model_validate(remediation.get("params") or {})
        except ValidationError as error:
            problems += _problems(error, ("spec", "remediation", "params"), document)
    escalation = spec.get("escalation") if isinstance(spec, dict) else None
    steps: list[Params] = []
    for position, step in enumerate(escalation if isinstance(escalation, list) else []):
        step_action = step.get("action") if isinstance(step, dict) else None
        if not isinstance(step, dict) or step_action not in REGISTRY:
            continue  # reported by the schema
        try:
            steps.append(REGISTRY[step_action].params_model.model_validate(step.get("params") or {}))
        except ValidationError as error:
            problems += _problems(
                error, ("spec", "escalation", position, "params"), replace(document, action=step_action)
            )
    if problems or policy is None or params is None:
        return None, problems
    return LoadedPolicy(policy, params, file, tuple(steps)), []


def _duplicate_keys(node: yaml.Node | None, path: tuple[int | str, ...] = ()) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(field path, first key node, repeated key node) for every key a mapping repeats.

    YAML parsers keep the last of two equal keys; for a policy that silently changes a cooldown or a
    selector, so a repeated key is an error naming both lines.
    """
    found: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, yaml.Node] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name != "<<":
                if name in seen:
                    dotted = ".".join(step if isinstance(step, str) else f"[{step}]" for step in (*path, name))
                    found.append((dotted, seen[name], key))
                seen.setdefault(name, key)
            found += _duplicate_keys(value, (*path, name if name is not None else "?"))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, index))
    return found


def _duplicate_key_errors(root: yaml.Node | None, data: object, file: str, index: int) -> list[PolicyError]:
    metadata = data.get("metadata") if isinstance(data, dict) else None
    named = isinstance(metadata, dict) and metadata.get("name")
    name = str(metadata.get("name")) if named and isinstance(metadata, dict) else f"<document {index + 1}>"
    return [
        PolicyError(
            file,
            again.start_mark.line + 1,
            again.start_mark.column + 1,
            name,
            dotted.replace(".[", "["),
            f"duplicate key (first on line {first.start_mark.line + 1}, again on line {again.start_mark.line + 1}); "
            "keep one",
        )
        for dotted, first, again in _duplicate_keys(root)
    ]


def parse_policies(text: str, file: str) -> tuple[list[LoadedPolicy], list[PolicyError]]:
    """The policies in one YAML text (documents separated by `---`), and every problem in it."""
    try:
        roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(error, "problem", None) or str(error)
        return [], [PolicyError(file, line, column, "<file>", "", f"not valid YAML: {problem}")]
    loaded: list[LoadedPolicy] = []
    errors: list[PolicyError] = []
    for index, (data, root) in enumerate(zip(documents, roots, strict=False)):
        if data is None:
            continue  # an empty document (a trailing ---)
        duplicates = _duplicate_key_errors(root, data, file, index)
        if duplicates:
            errors += duplicates
            continue
        policy, problems = _load_document(data, root, file, index)
        errors += problems
        if policy is not None:
            loaded.append(policy)
    return loaded, errors


def load_policies(path: Path | Iterable[Path]) -> PolicySet:
    """Every policy at `path` (a file or folder, or several); raises PolicyLoadError listing all problems."""
    files = [f for p in ([path] if isinstance(path, Path) else path) for f in policy_files(p)]
    loaded: list[LoadedPolicy] = []
    errors: list[PolicyError] = []
    if not files:
        raise PolicyLoadError([PolicyError(str(path), 1, 1, "<none>", "", "no policy files (*.yaml, *.yml) here")])
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            errors.append(PolicyError(str(file), 1, 1, "<file>", "", f"cannot be read: {error}"))
            continue
        policies, problems = parse_policies(text, str(file))
        loaded += policies
        errors += problems
    seen: dict[str, str] = {}
    for policy in loaded:
        if policy.name in seen:
            errors.append(
                PolicyError(
                    policy.source, 1, 1, policy.name, "metadata.name", f"duplicate name (also in {seen[policy.name]})"
                )
            )
        seen.setdefault(policy.name, policy.source)
    if errors:
        raise PolicyLoadError(errors)
    return PolicySet(tuple(loaded), tuple(str(f) for f in files))
