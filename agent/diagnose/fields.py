"""Read fields of ECS objects defensively: input may be hand-edited, truncated or from a newer API."""

from __future__ import annotations


def text(value: object) -> str:
    """The value if it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def integer(value: object) -> int | None:
    """The value as an int if it is one (or a string of digits), else None; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None
