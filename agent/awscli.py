"""`aws` CLI command lines, so every proposal and every piece of advice can be run as printed."""

from __future__ import annotations

import json
import shlex


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
