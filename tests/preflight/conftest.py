"""A simulated account, configured the standard AWS way, with one Fargate service behind a load balancer."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from agent.cli import main
from agent.sim import World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with World.start(seed=5) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        world.add_fargate_cluster("prod")
        world.push_image("web", "v1")
        world.push_image("web", "v2")
        world.add_service("prod", "web", image="web:v1", circuit_breaker=(True, True), grace_period=60)
        world.requests.clear()
        yield world


def next_revision(world: World, **changes: Any) -> dict[str, Any]:
    """What a pipeline is about to register: the service's task definition, changed (container fields under
    `app`)."""
    described = world.client("ecs").describe_task_definition(taskDefinition="web")["taskDefinition"]
    container = {**described["containerDefinitions"][0], **changes.pop("app", {})}
    return {**described, "containerDefinitions": [container], **changes}


def run_preflight(tmp_path: Path, definition: dict[str, Any], *flags: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "task-definition.json"
    path.write_text(json.dumps(definition, default=str), encoding="utf-8")
    out = io.StringIO()
    code = main(["preflight", "--task-definition", str(path), "--output", "json", *flags], stdout=out)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's checks by name (the last of each name)."""
    return {c["check"]: c for c in report["checks"]}
