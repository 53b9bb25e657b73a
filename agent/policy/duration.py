"""Durations as people write them in policies: `90s`, `15m`, `1h`, `1h30m`, `2d`, or plain seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError with the accepted forms when it is not a duration."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration is 0 or more")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _PART.findall(text)
        if parts and "".join(number + unit for number, unit in parts) == text:
            return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 15m, 1h or 1h30m")


def format_duration(seconds: float) -> str:
    """`1800` -> `30m`: the shortest exact form."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"
