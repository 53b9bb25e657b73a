"""Durations as people write them in policies and settings: `90s`, `15m`, `1h`, `1h30m`, `2d`, or seconds.

Every duration is finite and at most `MAX_DURATION_SECONDS` (365 days): a window or a cooldown longer
than a year means nothing to ECS, whose evidence lasts hours, and an unbounded one would overflow the
date arithmetic of every pass. A bad value is refused when the file or setting is read, never later.
"""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 365 * 86400.0
FORMS = "write e.g. 90s, 15m, 1h or 1h30m"


def _bounded(seconds: float, shown: object) -> float:
    if math.isnan(seconds):
        raise ValueError(f"{shown!r} is not a duration; {FORMS}")
    if seconds < 0:
        raise ValueError(f"{shown} is negative; a duration is 0 or more")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{shown} is longer than 365d, the longest duration accepted")
    return seconds


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError naming the accepted forms and bounds when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _bounded(float(value), value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return _bounded(float(text), value)  # plain seconds, as environment variables carry them
        except ValueError as error:
            if "longer than" in str(error) or "negative" in str(error):
                raise
        parts = _PART.findall(text)
        if parts and "".join(number + unit for number, unit in parts) == text:
            return _bounded(sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts), value)
    raise ValueError(f"{value!r} is not a duration; {FORMS}")


def format_duration(seconds: float) -> str:
    """`1800` -> `30m`: the shortest exact form."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"
