"""A fresh simulated world per test: each starts from an empty account on its own port."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agent.sim import World
from tests.sim.times import START

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=7, start_time=START) as started:
        yield started


@pytest.fixture
def web(world: World) -> World:
    """`prod/web`: two healthy Fargate tasks behind a load balancer, deployment COMPLETED."""
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", desired_count=2)
    world.advance(300)
    return world
