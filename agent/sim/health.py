"""ELB health checks of one target and what the ECS scheduler does about them: pure timing.

The load balancer probes every `interval` seconds from registration. A target turns healthy after
`healthy_threshold` successes in a row and unhealthy after `unhealthy_threshold` failures in a row.
The scheduler ignores an unhealthy target until the service's grace period after the task started;
after that it stops the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A target group's health-check settings (seconds and counts), as ELBv2 stores them."""

    path: str = "/health"
    interval_seconds: int = 30
    timeout_seconds: int = 5
    healthy_threshold: int = 3
    unhealthy_threshold: int = 2


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    """Seconds after registration: when the target turns unhealthy / healthy (None: never), and when the
    scheduler stops the task for it (None: it does not)."""

    unhealthy_after: float | None
    healthy_after: float | None
    stop_after: float | None


def target_verdict(
    *,
    ready_after: float | None,
    check: HealthCheck,
    grace_after: float,
) -> TargetVerdict:
    """The fate of a target whose app answers from `ready_after` seconds after registration (None:
    never), given the grace period's end, also in seconds after registration."""
    interval = check.interval_seconds
    # The first probe that finds the app answering.
    first_success = math.inf if ready_after is None else max(1, math.ceil(max(ready_after, 0.0) / interval)) * interval
    healthy_after = first_success + (check.healthy_threshold - 1) * interval
    failures_before = first_success / interval - 1  # probes that fail before the first success
    unhealthy_after = check.unhealthy_threshold * interval if failures_before >= check.unhealthy_threshold else None
    stop_after = None
    if unhealthy_after is not None:
        candidate = max(unhealthy_after, grace_after)
        if candidate < healthy_after:
            stop_after = candidate
    return TargetVerdict(
        unhealthy_after=unhealthy_after,
        healthy_after=None if math.isinf(healthy_after) else healthy_after,
        stop_after=stop_after,
    )
