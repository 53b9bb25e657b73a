"""The agent, unchanged, against the simulated world over HTTP; time is the world's, never real."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent import logs
from agent.decide import Outcome, Proposal
from agent.demo import agent_for, approve, approver_gateway, manage, shorten_cooldowns
from agent.metrics import Metrics
from agent.model import Risk
from agent.reconciler import Reconciler
from agent.settings import LogFormat, Mode, Settings
from agent.sim import Scenario, World
from agent.telemetry import PassReport

START = datetime(2026, 4, 19, 2, 0, tzinfo=UTC)
PREVENTION = {risk.value for risk in Risk}


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=11, start_time=START) as started:
        yield started


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[io.StringIO]:
    lines = io.StringIO()
    logs.configure(LogFormat.JSON, stream=lines)
    yield lines


@dataclass
class Run:
    """An agent run against a world: every pass's report, and the remediations it applied."""

    world: World
    reconciler: Reconciler
    reports: list[PassReport] = field(default_factory=list)

    @property
    def metrics(self) -> Metrics:
        return self.reconciler.metrics

    def passes(self, count: int, *, every: float = 30.0) -> PassReport:
        for _ in range(count):
            self.reports.append(self.reconciler.run_pass(self.world.now))
            self.world.advance(every)
        return self.reports[-1]

    def proposals(self) -> list[Proposal]:
        return [p for report in self.reports for p in report.proposals]

    def applied(self) -> list[Proposal]:
        """Remediations of failures that were applied (prevention advice excluded)."""
        return [p for p in self.proposals() if p.outcome is Outcome.APPLIED and p.cause not in PREVENTION]


def start_agent(world: World, mode: Mode = Mode.ENFORCE, *, cooldown: float | None = None, **settings: Any) -> Run:
    """The agent against `world`, with the bundled policies (every cooldown set to `cooldown` seconds
    when given: short enough for an episode to move on as soon as a verdict allows)."""
    metrics = Metrics(CollectorRegistry())
    reconciler = agent_for(world, Settings(mode=mode, **settings), metrics=metrics)
    if cooldown is not None:
        shorten_cooldowns(reconciler, cooldown)
    return Run(world, reconciler)


def approve_waiting(run: Run) -> None:
    """Play the operator who answers `ecs-medic proposals` with `ecs-medic approve ID`."""
    approver = approver_gateway(run.world)
    for proposal in run.reports[-1].proposals:
        if proposal.outcome is Outcome.AWAITING_APPROVAL:
            approve(run.world, approver, proposal.service_arn, proposal.id, run.world.now)


BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def policies_where(folder: Path, **edits: tuple[str, str]) -> Path:
    """A copy of the bundled policies with `file stem -> (text, replacement)` edits, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in BUNDLED_POLICIES.glob("*.yaml"):
        text = source.read_text()
        if source.stem.replace("-", "_") in edits:
            old, new = edits[source.stem.replace("-", "_")]
            assert old in text, f"{old!r} not in {source.name}"
            text = text.replace(old, new)
        (folder / source.name).write_text(text)
    return folder


def carried_out(world: World, operation: str) -> int:
    """Requests for `operation` the world carried out (whether or not their answer reached the client)."""
    return sum(
        1
        for r in world.requests.all()
        if r.operation == operation and 200 <= r.status < 300 and r.fault in (None, "lost_response", "hang")
    )


def agent_revisions(world: World, family: str) -> list[str]:
    """ACTIVE revisions of `family` the agent registered (they carry its change tag)."""
    ecs = world.client("ecs")
    found = []
    for arn in ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]:
        tags = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags") or []
        if any(t["key"] == "ecs-medic:change" for t in tags):
            found.append(arn.rsplit("/", 1)[-1])
    return found


def prepare(world: World, scenario: Scenario) -> None:
    """Break the world the scenario's way, opt its services in, and forget the setup's own requests."""
    scenario.setup(world)
    manage(world, [scenario])
    world.requests.clear()
