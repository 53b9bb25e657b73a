"""`aws` CLI command lines, so every proposal and every piece of advice can be run as printed.

`render` turns a plan's API calls into the commands that make exactly the same requests: each
parameter becomes its CLI option (`healthCheckGracePeriodSeconds` -> `--health-check-grace-period-seconds`),
structures are passed as JSON, and a value learnt from an earlier call (a new revision's ARN) travels
through a shell variable.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent.actions.base import ApiCall, Derived

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def quote(value: str) -> str:
    return shlex.quote(value)


def json_argument(value: object) -> str:
    """A JSON value as one shell word (compact, so the command stays on one line)."""
    return shlex.quote(json.dumps(value, separators=(",", ":"), sort_keys=True, default=str))


def command(*words: str, region: str | None = None) -> str:
    """`aws <words...> [--region R]`; words are already quoted where they need to be."""
    line = "aws " + " ".join(word for word in words if word)
    if region and " --region " not in f" {line} ":
        line += f" --region {region}"
    return line


def kebab(name: str) -> str:
    """`UpdateService` -> `update-service`, `healthCheckGracePeriodSeconds` -> `health-check-grace-period-seconds`."""
    return _WORD_BOUNDARY.sub("-", name).lower()


def variable(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper())


def _option(name: str, value: Any) -> str:  # noqa: ANN401 - any API parameter value
    flag = f"--{kebab(name)}"
    if isinstance(value, bool):
        return flag if value else f"--no-{kebab(name)}"
    if _is_ref(value):
        return f'{flag} "${variable(value.name)}"'
    if isinstance(value, str | int | float):
        return f"{flag} {quote(str(value))}"
    if isinstance(value, list | tuple) and all(isinstance(item, str | int | float) for item in value):
        return " ".join([flag, *(quote(str(item)) for item in value)])
    return f"{flag} {json_argument(value)}"


def _is_ref(value: object) -> bool:
    from agent.actions.base import Ref  # noqa: PLC0415 - the plan types import this module

    return isinstance(value, Ref)


def jq_program(derived: Derived) -> str:
    """The jq filter that turns the read document into the call's parameters."""
    picks = ", ".join(derived.keep)
    steps = [f"{{{picks}}}", "with_entries(select(.value != null))"]
    steps += [
        f"(.{items}[] | select(.{key} == {json.dumps(key_value)}) | .{name}) = {json.dumps(value)}"
        for items, key, key_value, name, value in derived.set_items
    ]
    steps += [f".{name} = {json.dumps(value)}" for name, value in derived.set_fields.items()]
    return " | ".join(steps)


def render_call(call: ApiCall, *, region: str | None = None) -> str:
    if call.derived is not None:
        read = render_call(call.derived.read, region=region)
        source = f"{read} --query {quote(call.derived.query)} --output json | jq -c {quote(jq_program(call.derived))}"
        options = [f'--cli-input-json "$({source})"']
    else:
        options = [_option(name, value) for name, value in call.params.items()]
    line = " ".join(["aws", call.api, kebab(call.operation), *options, *([f"--region {region}"] if region else [])])
    if call.outputs:
        # One output per call is all a plan needs: the value a later call refers to.
        [(name, path)] = call.outputs.items()
        return f"{variable(name)}=$({line} --query {quote(path)} --output text)"
    return line


def render(calls: Sequence[ApiCall], *, region: str | None = None) -> tuple[str, ...]:
    return tuple(render_call(call, region=region) for call in calls)
