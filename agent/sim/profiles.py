"""How a simulated application behaves once its container starts: an `AppProfile` per image.

The world never runs code. An image's profile says how long the app takes to answer health checks
(or that it never does), how much memory it grows to (and whether it keeps growing), and whether it
exits; `plan_container` turns that and the container's memory limit into what will happen, the way
the kernel and the runtime would decide it, and `memory_used` says what it holds at any moment (what
Container Insights reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from agent.sim import wording

# The runtime kills a process at its hard limit once it gets there, never before a few seconds.
_MIN_SECONDS_TO_OOM = 2.0
_BAD_ENTRYPOINT_EXIT_AFTER = 0.5


class AppExit(StrEnum):
    """What the process does on its own."""

    NONE = "none"  # serves until stopped
    CRASH = "crash"  # exits 1 after `crash_after_seconds`, logging `crash_log`
    BAD_ENTRYPOINT = "bad_entrypoint"  # the command cannot be executed: exit 255 at once


@dataclass(frozen=True, slots=True)
class AppProfile:
    """The behaviour of the application inside one image.

    startup_seconds: until the app answers its health check.
    peak_memory_mib: the resident memory it grows to (MiB).
    memory_ramp_seconds: how long it takes to get there, growing evenly.
    leak_mib_per_second: after the ramp, how fast it keeps growing (a leak: no limit is ever enough).
    ready: False when it never answers its health check (it hangs while starting).
    exit: whether it exits by itself (`AppExit`).
    crash_after_seconds: for `AppExit.CRASH`, seconds after start.
    port: the port it listens on.
    startup_log: lines written when it starts; crash_log: its last lines before a crash.
    """

    startup_seconds: float = 10.0
    peak_memory_mib: int = 200
    memory_ramp_seconds: float = 60.0
    leak_mib_per_second: float = 0.0
    ready: bool = True
    exit: AppExit = AppExit.NONE
    crash_after_seconds: float = 4.0
    port: int = 8080
    startup_log: tuple[str, ...] = field(
        default=("Starting application", "Listening on 0.0.0.0:8080"),
    )
    crash_log: tuple[str, ...] = ()
    entrypoint: str = "/app/docker-entrypoint.sh"

    @classmethod
    def healthy(cls, *, startup_seconds: float = 10.0, peak_memory_mib: int = 200) -> AppProfile:
        return cls(startup_seconds=startup_seconds, peak_memory_mib=peak_memory_mib)

    @classmethod
    def slow_start(cls, startup_seconds: float) -> AppProfile:
        return cls(
            startup_seconds=startup_seconds,
            startup_log=("Starting application", "Warming caches", "Listening on 0.0.0.0:8080"),
        )

    @classmethod
    def memory_hungry(cls, peak_memory_mib: int, *, ramp_seconds: float = 40.0) -> AppProfile:
        return cls(
            peak_memory_mib=peak_memory_mib,
            memory_ramp_seconds=ramp_seconds,
            startup_log=("Starting application", "Loading model into memory", "Listening on 0.0.0.0:8080"),
        )

    @classmethod
    def leaking(cls, peak_memory_mib: int, *, mib_per_second: float, ramp_seconds: float = 40.0) -> AppProfile:
        """Grows to `peak_memory_mib` like `memory_hungry`, then keeps allocating without bound."""
        return cls(
            peak_memory_mib=peak_memory_mib,
            memory_ramp_seconds=ramp_seconds,
            leak_mib_per_second=mib_per_second,
            startup_log=("Starting application", "Replaying the order journal", "Listening on 0.0.0.0:8080"),
        )

    @classmethod
    def hanging(cls) -> AppProfile:
        """Starts, then waits forever for something (a lock, a dependency) and never answers."""
        return cls(
            ready=False,
            startup_log=("Starting application", "Waiting for the schema migration lock"),
        )

    @classmethod
    def crashing(cls, *crash_log: str, after_seconds: float = 4.0) -> AppProfile:
        return cls(
            exit=AppExit.CRASH,
            crash_after_seconds=after_seconds,
            startup_log=("Starting application",),
            crash_log=crash_log or _DEFAULT_CRASH_LOG,
        )

    @classmethod
    def bad_entrypoint(cls, entrypoint: str = "/app/docker-entrypoint.sh") -> AppProfile:
        return cls(exit=AppExit.BAD_ENTRYPOINT, entrypoint=entrypoint, startup_log=())


_DEFAULT_CRASH_LOG = (
    "Error: connect ECONNREFUSED 10.0.3.17:5432",
    "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",
    "Process exited with code 1",
)


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """What will happen to a container that started, in seconds after its start.

    `exit_after` is None when the app runs until it is stopped. `ready_after` is None when it never
    answers a health check (it exits first).
    """

    exit_after: float | None
    exit_code: int | None
    reason: str | None
    ready_after: float | None
    start_log: tuple[str, ...]
    exit_log: tuple[str, ...]


def plan_container(profile: AppProfile, memory_limit_mib: int | None) -> ContainerPlan:
    """The fate of a container running `profile` under a hard memory limit (None: no limit)."""
    if profile.exit is AppExit.BAD_ENTRYPOINT:
        return ContainerPlan(
            exit_after=_BAD_ENTRYPOINT_EXIT_AFTER,
            exit_code=255,
            reason=None,
            ready_after=None,
            start_log=(f"exec {profile.entrypoint}: exec format error",),
            exit_log=(),
        )
    candidates: list[tuple[float, int, str | None, tuple[str, ...]]] = []
    oom_after = seconds_to_oom(profile, memory_limit_mib)
    if oom_after is not None:
        candidates.append((oom_after, 137, wording.OOM_REASON, ()))
    if profile.exit is AppExit.CRASH:
        candidates.append((profile.crash_after_seconds, 1, None, profile.crash_log))
    startup = profile.startup_seconds if profile.ready else None
    if not candidates:
        return ContainerPlan(None, None, None, startup, profile.startup_log, ())
    exit_after, code, reason, exit_log = min(candidates, key=lambda c: c[0])
    ready = startup if startup is not None and startup < exit_after else None
    return ContainerPlan(exit_after, code, reason, ready, profile.startup_log, exit_log)


def memory_used(profile: AppProfile, seconds: float) -> float:
    """What the app holds (MiB) `seconds` after its start, with no limit in the way."""
    ramp = profile.memory_ramp_seconds
    if seconds < ramp:
        return profile.peak_memory_mib * max(seconds, 0.0) / ramp
    return profile.peak_memory_mib + profile.leak_mib_per_second * (seconds - ramp)


def seconds_to_oom(profile: AppProfile, memory_limit_mib: int | None) -> float | None:
    """When the app reaches a hard limit of `memory_limit_mib` and is killed; None if it never does."""
    if memory_limit_mib is None:
        return None
    if profile.peak_memory_mib > memory_limit_mib:
        seconds = profile.memory_ramp_seconds * memory_limit_mib / profile.peak_memory_mib
    elif profile.leak_mib_per_second > 0:
        seconds = (
            profile.memory_ramp_seconds + (memory_limit_mib - profile.peak_memory_mib) / profile.leak_mib_per_second
        )
    else:
        return None
    return max(_MIN_SECONDS_TO_OOM, seconds)
