"""Rolling-deployment arithmetic of the ECS scheduler: pure functions, unit-tested on their own."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

BREAKER_MIN_THRESHOLD = 3
BREAKER_MAX_THRESHOLD = 200
# The scheduler's launch back-off for tasks that never reach RUNNING tops out at 15 minutes.
MAX_LAUNCH_BACKOFF_SECONDS = 900.0
_FIRST_BACKOFF_SECONDS = 10.0
UNABLE_TO_START_AFTER = 3  # consecutive failed starts before ECS says it cannot start tasks

DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def breaker_threshold(desired_count: int) -> int:
    """Failed tasks that trip the deployment circuit breaker: half the desired count, 3 to 200."""
    return min(BREAKER_MAX_THRESHOLD, max(BREAKER_MIN_THRESHOLD, math.ceil(0.5 * desired_count)))


def launch_backoff_seconds(consecutive_start_failures: int) -> float:
    """How long the scheduler waits before the next launch after tasks failed to start in a row."""
    if consecutive_start_failures <= 0:
        return 0.0
    return min(MAX_LAUNCH_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2.0 ** (consecutive_start_failures - 1))


def new_deployment_id(rng: random.Random) -> str:
    """`ecs-svc/` and 19 digits, like every ECS deployment id."""
    return f"ecs-svc/{rng.randrange(10**18, 10**19)}"


@dataclass(frozen=True, slots=True)
class Breaker:
    enable: bool
    rollback: bool


def breaker_of(configuration: dict[str, Any]) -> Breaker:
    breaker = configuration.get("deploymentCircuitBreaker")
    if not isinstance(breaker, dict):
        return Breaker(enable=False, rollback=False)
    return Breaker(enable=bool(breaker.get("enable")), rollback=bool(breaker.get("rollback")))


def merged_configuration(previous: dict[str, Any] | None, update: dict[str, Any] | None) -> dict[str, Any]:
    """The deployment configuration after an UpdateService that names only some of its fields."""
    merged = dict(DEFAULT_DEPLOYMENT_CONFIGURATION)
    for source in (previous or {}, update or {}):
        for key, value in source.items():
            if key == "deploymentCircuitBreaker" and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            elif value is not None:
                merged[key] = value
    return merged


def rolling_limits(desired_count: int, configuration: dict[str, Any]) -> tuple[int, int]:
    """(maximum tasks of all deployments, minimum healthy tasks) during a rolling update."""
    maximum_percent = int(configuration.get("maximumPercent", 200))
    minimum_percent = int(configuration.get("minimumHealthyPercent", 100))
    maximum = math.floor(desired_count * maximum_percent / 100)
    minimum = math.ceil(desired_count * minimum_percent / 100)
    # ECS always lets a rolling update make progress: at least one task above the desired count, or
    # one below it when the maximum leaves no room.
    if maximum <= desired_count and minimum >= desired_count > 0:
        maximum = desired_count + 1
    return maximum, minimum
