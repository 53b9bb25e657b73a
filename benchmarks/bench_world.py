"""The simulated world at benchmark scale: 2,000 services across 4 clusters.

Reports how long the fleet takes to build (median of a few builds, each in a fresh world), what one
runtime tick costs over the whole fleet (idle, and with 5% of services failing), and what a client
pays for DescribeServices against it. Exits non-zero if a build takes longer than 60 seconds.
"""

from __future__ import annotations

import statistics
import time

from agent.sim import FleetSpec, World, build_fleet

SERVICES = 2000
CLUSTERS = 4
BUILDS = 3
TICKS = 60  # five simulated minutes
BUILD_LIMIT_SECONDS = 60.0


def _build(failing_fraction: float) -> tuple[World, float, int]:
    world = World.start(seed=11)
    fleet = build_fleet(world, FleetSpec(services=SERVICES, clusters=CLUSTERS, failing_fraction=failing_fraction))
    return world, fleet.build_seconds, len(fleet.failing)


def _tick_ms(world: World) -> float:
    started = time.perf_counter()
    world.advance(TICKS * world.tick_seconds)
    return (time.perf_counter() - started) * 1000 / TICKS


def _describe_ms(world: World) -> float:
    ecs = world.client("ecs")
    names = [f"svc-{i:04d}" for i in range(0, 40, CLUSTERS)]
    started = time.perf_counter()
    for _ in range(20):
        ecs.describe_services(cluster="fleet-1", services=names)
    return (time.perf_counter() - started) * 1000 / 20


def main() -> int:
    builds = []
    rows = []
    for round_ in range(BUILDS):
        failing_fraction = 0.05 if round_ == 0 else 0.0
        world, seconds, failing = _build(failing_fraction)
        builds.append(seconds)
        try:
            if round_ == 0:
                rows.append((f"tick, {failing} services failing", f"{_tick_ms(world):.1f} ms"))
                rows.append(("DescribeServices (10 names)", f"{_describe_ms(world):.1f} ms"))
            elif round_ == 1:
                rows.append(("tick, all services steady", f"{_tick_ms(world):.1f} ms"))
        finally:
            world.stop()
    build = statistics.median(builds)
    print(f"world: {SERVICES:,} services in {CLUSTERS} clusters, 2 tasks each; wall-clock time")
    print(f"{'measure':<34}{'value':>12}")
    print(f"{f'build (median of {BUILDS})':<34}{f'{build:.2f} s':>12}")
    for name, value in rows:
        print(f"{name:<34}{value:>12}")
    ok = max(builds) <= BUILD_LIMIT_SECONDS
    print(f"build limit {BUILD_LIMIT_SECONDS:.0f} s: {'ok' if ok else 'EXCEEDED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
