"""`diagnose --cluster --service` runs the guide's pull checks live: the execution role's rights, the network path."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.cli import main
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare


@pytest.fixture
def live(monkeypatch):
    """A world whose clock is the real one (the command uses the real clock)."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ECS_MEDIC_LOG_FORMAT", "json")
        yield world


def diagnose(service: str) -> dict[str, dict[str, object]]:
    out = io.StringIO()
    assert main(["diagnose", "--cluster", "prod", "--service", service, "--output", "json"], stdout=out) == 0
    return {c["check"]: c for c in json.loads(out.getvalue())["checks"]}


def test_a_role_that_lost_its_pull_rights_is_named_with_the_missing_actions(live):
    prepare(live, SCENARIOS["ecr-permission-removed"])
    found = diagnose("web")
    role = found["execution role"]
    assert role["verdict"] == "problem"
    assert role["lines"][0].startswith(
        "ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/web is denied"
    )
    assert role["lines"][-1].startswith("role web-execution needs: ")
    assert found["network path"]["verdict"] == "ok"
    assert live.requests.mutating() == []


def test_a_service_whose_subnets_lost_their_nat_route_is_told_what_to_add(live):
    prepare(live, SCENARIOS["healthy"])
    live.net.remove_nat_route()
    found = diagnose("web")
    network = found["network path"]
    assert network["verdict"] == "problem"
    assert "has no default route (no NAT or internet gateway)" in network["lines"][1]
    assert found["execution role"]["verdict"] == "ok"
    assert found["log groups"]["verdict"] == "ok"


def test_the_text_report_marks_each_check(live):
    prepare(live, SCENARIOS["ecr-permission-removed"])
    out = io.StringIO()
    assert main(["diagnose", "--cluster", "prod", "--service", "web"], stdout=out) == 0
    text = out.getvalue()
    assert "  FAIL execution role\n" in text
    assert "  ok   network path\n" in text
