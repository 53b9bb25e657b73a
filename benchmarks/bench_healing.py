"""How fast each failure scenario heals, in simulated minutes, with the agent, with ECS's own circuit
breaker, and with nothing.

Every scenario is built in a fresh world and broken as it breaks in life; the clock starts at the
first failure ECS reports (a stopped task, or a placement event) and stops when every affected service
reaches the steady state it then keeps until the end of the run (60 simulated minutes at most):

- agent: `ecs-medic` in enforce mode from the moment of the break, one pass every 30 s, the bundled
  policies with every cooldown set to one minute, and an operator who approves at once what waits for
  approval; "actions" are the changes it made, in order ("undo" is a change it reverted);
- circuit breaker: the deployment circuit breaker with rollback turned on for the services, no agent;
- nothing: neither.

Prints a Markdown table (the one quoted in README.md). Exits non-zero if the agent leaves a service it
could fix (every scenario but the storm, which it must not touch, and the lost ECR permission, which a
person fixes) unhealed.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from agent import logs
from agent.decide import Kind, Outcome
from agent.demo import agent_for, approve, approver_gateway, manage, shorten_cooldowns
from agent.diagnose import diagnose_service
from agent.metrics import Metrics
from agent.settings import LogFormat, Mode, Settings
from agent.sim import SCENARIOS, Scenario, World

START = datetime(2026, 4, 19, 2, 0, tzinfo=UTC)
MINUTES = 60
INTERVAL = 30.0
COOLDOWN = 60.0
SETTLED = 300.0  # a run ends early once its services were steady this long after a failure
LEFT_TO_A_PERSON = {"storm", "ecr-permission-removed"}
PREVENTION = {"circuit_breaker_disabled", "no_grace_period_behind_load_balancer", "mutable_image_tag"}


@dataclass
class Result:
    """One run: seconds from the first failure to lasting steady state (None: not healed), and what
    changed the services."""

    healed: float | None
    actions: str


def _services(scenario: Scenario) -> list[tuple[str, str]]:
    return [(scenario.cluster, name) for name in scenario.services]


def _first_failure(world: World, scenario: Scenario) -> datetime | None:
    """When ECS first reported a failure of one of the scenario's services, if it has."""
    moments = []
    for cluster, name in _services(scenario):
        described = world.describe_service(cluster, name)
        moments += [
            f.occurred_at
            for f in diagnose_service(described, world.stopped_tasks(cluster, name))
            if f.failure and f.occurred_at
        ]
    return min(moments) if moments else None


def _run(scenario: Scenario, step: Callable[[World], None], world: World) -> float | None:
    """Advance the world pass by pass (`step` runs before each advance); seconds from the first failure
    to the steady state that lasted, or None."""
    first: datetime | None = None
    steady_since: datetime | None = None
    for _ in range(int(MINUTES * 60 / INTERVAL)):
        step(world)
        world.advance(INTERVAL)
        if first is None:
            first = _first_failure(world, scenario)
            continue
        if all(world.service_state(cluster, name).steady for cluster, name in _services(scenario)):
            steady_since = steady_since or world.now
            if (world.now - steady_since).total_seconds() >= SETTLED:
                break
        else:
            steady_since = None
    if first is None or steady_since is None:
        return None
    return max(0.0, (steady_since - first).total_seconds())


def with_agent(scenario: Scenario) -> Result:
    with World.start(seed=7, start_time=START) as world:
        scenario.build(world)
        manage(world, [scenario])
        reconciler = agent_for(world, Settings(mode=Mode.ENFORCE), metrics=Metrics(CollectorRegistry()))
        shorten_cooldowns(reconciler, COOLDOWN)
        approver = approver_gateway(world)
        changes: list[str] = []

        def step(world: World) -> None:
            report = reconciler.run_pass(world.now)
            for proposal in report.proposals:
                if proposal.cause in PREVENTION:
                    continue
                if proposal.outcome is Outcome.AWAITING_APPROVAL:
                    approve(world, approver, proposal.service_arn, proposal.id, world.now)
                elif proposal.outcome is Outcome.REVERTED or (
                    proposal.outcome is Outcome.APPLIED and proposal.kind is Kind.REMEDIATION
                ):
                    label = "undo" if proposal.kind is Kind.REVERT else proposal.action
                    if proposal.action != "notify" or not changes or changes[-1] != "notify":
                        changes.append(label)
            paused = {c for c in report.paused_clusters if c == scenario.cluster}
            if paused and "paused (storm guard)" not in changes:
                changes.append("paused (storm guard)")

        healed = _run(scenario, step, world)
        return Result(healed, _summary(changes))


def with_breaker(scenario: Scenario) -> Result:
    with World.start(seed=7, start_time=START) as world:
        scenario.build(world)
        ecs = world.client("ecs")
        for cluster, name in _services(scenario):
            configuration = dict(world.describe_service(cluster, name)["deploymentConfiguration"])
            configuration["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
            ecs.update_service(cluster=cluster, service=name, deploymentConfiguration=configuration)
        healed = _run(scenario, lambda _world: None, world)
        rolled_back = any(
            "rolling back" in str(event.get("message"))
            for cluster, name in _services(scenario)
            for event in world.describe_service(cluster, name)["events"]
        )
        return Result(healed, "ECS rollback" if rolled_back else "-")


def with_nothing(scenario: Scenario) -> Result:
    with World.start(seed=7, start_time=START) as world:
        scenario.build(world)
        return Result(_run(scenario, lambda _world: None, world), "-")


def _summary(changes: list[str]) -> str:
    """`raise_grace_period x2, rollback_task_definition` from the changes in order."""
    parts: list[list[Any]] = []
    for change in changes:
        if parts and parts[-1][0] == change:
            parts[-1][1] += 1
        else:
            parts.append([change, 1])
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in parts) or "-"


def _minutes(seconds: float | None) -> str:
    return "not healed" if seconds is None else f"{seconds / 60:.1f}"


def main() -> int:
    logs.configure(LogFormat.JSON, stream=io.StringIO())
    started = time.perf_counter()
    rows = []
    unhealed = []
    for scenario in SCENARIOS.values():
        if scenario.expected_cause is None:
            continue
        agent, breaker, nothing = with_agent(scenario), with_breaker(scenario), with_nothing(scenario)
        rows.append((scenario.name, agent, breaker, nothing))
        if agent.healed is None and scenario.name not in LEFT_TO_A_PERSON:
            unhealed.append(scenario.name)
    print(
        f"healing: simulated minutes from the first failure to lasting steady state ({MINUTES} at most); "
        f"one pass every {INTERVAL:.0f} s, cooldowns {COOLDOWN:.0f} s\n"
    )
    print("| scenario | agent (enforce) | agent's changes | circuit breaker alone | nothing |")
    print("|---|---:|---|---:|---:|")
    for name, agent, breaker, nothing in rows:
        breaker_cell = _minutes(breaker.healed) + (f" ({breaker.actions})" if breaker.actions != "-" else "")
        print(f"| {name} | {_minutes(agent.healed)} | {agent.actions} | {breaker_cell} | {_minutes(nothing.healed)} |")
    print(f"\n{len(rows)} scenarios x 3 setups in {time.perf_counter() - started:.0f} s of wall-clock time")
    if unhealed:
        print(f"NOT HEALED by the agent: {', '.join(unhealed)}")
    return 1 if unhealed else 0


if __name__ == "__main__":
    raise SystemExit(main())
