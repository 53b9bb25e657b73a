"""Run the world as a standalone AWS endpoint that any SDK, the `aws` CLI or the agent can use.

Simulated time follows the wall clock at `speed` times real time, in a background thread, until the
process gets SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.sim.scenarios import Scenario
from agent.sim.scenarios import scenario as find_scenario
from agent.sim.world import World

if TYPE_CHECKING:
    from types import FrameType
    from typing import TextIO

# How often the clock thread catches simulated time up with the wall clock (real seconds).
_CATCH_UP_SECONDS = 0.5


def serve(scenario: str | None, port: int, speed: float, out: TextIO) -> None:
    """Serve the world on 127.0.0.1:`port` (0: any free port), optionally set up as `scenario`, until
    SIGINT or SIGTERM. Call it from the main thread: it installs signal handlers."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    chosen = find_scenario(scenario) if scenario else None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _setter(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
    world = World.start(port=port)
    try:
        if chosen is not None:
            chosen.setup(world)
        _print_instructions(world, chosen, speed, out)
        clock = threading.Thread(
            target=_follow_wall_clock, args=(world, speed, stop), name="ecs-sim-clock", daemon=True
        )
        clock.start()
        while not stop.wait(0.2):
            pass
        clock.join(timeout=5)
    finally:
        world.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("ecs-sim: stopped", file=out, flush=True)


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    return handle


def _follow_wall_clock(world: World, speed: float, stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(_CATCH_UP_SECONDS):
        now = time.monotonic()
        world.advance((now - last) * speed)
        last = now


def _print_instructions(world: World, chosen: Scenario | None, speed: float, out: TextIO) -> None:
    env = world.environment
    cluster = chosen.cluster if chosen else "CLUSTER"
    service = chosen.services[0] if chosen else "SERVICE"
    lines = [
        f"ecs-sim: serving a simulated AWS account on {world.endpoint_url}"
        + (f" (scenario {chosen.name}: {chosen.title})" if chosen else ""),
        f"simulated time runs at {speed:g}x real time; it is now {world.now.isoformat()}",
        "",
        "point a client at it:",
        *(f"  export {key}={value}" for key, value in env.items()),
        "",
        "for example:",
        f"  aws --endpoint-url {world.endpoint_url} ecs describe-services --cluster {cluster} --services {service}",
        "",
        "stop with Ctrl-C",
    ]
    print("\n".join(lines), file=out, flush=True)
