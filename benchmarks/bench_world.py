"""The simulated world at benchmark scale: 2,000 services in 4 clusters and 10,000 in 20.

For each size: how long the fleet takes to build (median of a few builds at 2,000, one at 10,000, each
in a fresh world), what one runtime tick costs over the whole fleet (every service steady, and with 5%
of services failing), and what a client pays for DescribeServices against it. Exits non-zero if a
build takes longer than its limit.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from agent.sim import FleetSpec, World, build_fleet

TICKS = 60  # five simulated minutes


@dataclass(frozen=True)
class Size:
    services: int
    clusters: int
    builds: int
    build_limit_seconds: float


SIZES = (Size(2000, 4, 3, 60.0), Size(10_000, 20, 1, 180.0))


def _build(size: Size, failing_fraction: float) -> tuple[World, float, int]:
    world = World.start(seed=11)
    fleet = build_fleet(
        world, FleetSpec(services=size.services, clusters=size.clusters, failing_fraction=failing_fraction)
    )
    return world, fleet.build_seconds, len(fleet.failing)


def _tick_ms(world: World) -> float:
    started = time.perf_counter()
    world.advance(TICKS * world.tick_seconds)
    return (time.perf_counter() - started) * 1000 / TICKS


def _describe_ms(world: World) -> float:
    ecs = world.client("ecs")
    names = [f"svc-{i:04d}" for i in range(0, 40, 4)]
    started = time.perf_counter()
    for _ in range(20):
        ecs.describe_services(cluster="fleet-1", services=names)
    return (time.perf_counter() - started) * 1000 / 20


def measure(size: Size) -> tuple[list[tuple[str, str]], float, bool]:
    rows: list[tuple[str, str]] = []
    builds = []
    steady = 0.0
    for round_ in range(max(size.builds, 2)):
        failing_fraction = 0.05 if round_ == 0 else 0.0
        world, seconds, failing = _build(size, failing_fraction)
        if round_ < size.builds:
            builds.append(seconds)
        try:
            if round_ == 0:
                rows.append((f"tick, {failing} services failing", f"{_tick_ms(world):.1f} ms"))
                rows.append(("DescribeServices (10 names)", f"{_describe_ms(world):.1f} ms"))
            elif round_ == 1:
                steady = _tick_ms(world)
                rows.append(("tick, all services steady", f"{steady:.1f} ms"))
        finally:
            world.stop()
    build = statistics.median(builds)
    label = f"build (median of {size.builds})" if size.builds > 1 else "build"
    rows.insert(0, (label, f"{build:.2f} s"))
    return rows, build, max(builds) <= size.build_limit_seconds


def main() -> int:
    ok = True
    for size in SIZES:
        rows, _, within = measure(size)
        print(f"world: {size.services:,} services in {size.clusters} clusters, 2 tasks each; wall-clock time")
        print(f"{'measure':<34}{'value':>12}")
        for name, value in rows:
            print(f"{name:<34}{value:>12}")
        print(f"build limit {size.build_limit_seconds:.0f} s: {'ok' if within else 'EXCEEDED'}")
        print()
        ok = ok and within
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
