"""Every failure scenario, end to end: enforce heals it with the expected action and no other;
dry-run changes nothing at all and proposes the same fix, with its evidence and command."""

from __future__ import annotations

import re

import pytest

from agent.decide import Outcome
from agent.settings import Mode
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import PREVENTION, approve_waiting, prepare, start_agent
from tests.e2e.test_healing import LADDERS

# What the agent must do for each scenario, and whether a person finishes the job (notify).
EXPECTED = {
    "image-tag-missing": ("rollback_task_definition", False),
    "ecr-permission-removed": ("notify", True),
    "oom-exit-137": ("raise_memory", False),
    "crash-loop": ("rollback_task_definition", False),
    "bad-entrypoint": ("rollback_task_definition", False),
    "placement-cpu": ("scale_capacity_provider", False),
    "placement-memory": ("scale_capacity_provider", False),
    "health-check-cycling": ("raise_grace_period", False),
    "deployment-no-circuit-breaker": ("enable_circuit_breaker", False),
}


def steady(world: World, name: str) -> bool:
    scenario = SCENARIOS[name]
    return all(world.service_state(scenario.cluster, service).steady for service in scenario.services)


def test_every_failure_scenario_has_an_expectation():
    # Scenarios where the first fix is not enough, or is sized from evidence, are in test_healing.
    assert set(EXPECTED) | set(LADDERS) | {"healthy", "storm"} == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_enforce_heals_with_the_expected_action_and_no_other(world, name):
    scenario = SCENARIOS[name]
    action, person_fixes = EXPECTED[name]
    prepare(world, scenario)
    run = start_agent(world)
    for _ in range(60):  # 30 simulated minutes at most
        run.passes(1)
        approve_waiting(run)
        judged = [v for report in run.reports for v in report.verifications]
        if steady(world, name) and run.applied() and (judged or person_fixes):
            break
        if person_fixes and run.applied():
            scenario.fix(world.client)  # the notification told a person exactly this
    assert steady(world, name), (
        f"{name} did not heal: {[(p.action, p.outcome.value, p.reason) for p in run.proposals()]}"
    )
    applied = run.applied()
    assert {p.action for p in applied} == {action}
    assert len(applied) == 1, [p.plan.summary for p in applied]
    [proposal] = applied
    assert proposal.cause == scenario.expected_cause.value
    judged = [v for report in run.reports for v in report.verifications]
    if action != "notify":
        assert judged == [(scenario.cluster, scenario.services[0], action, Outcome.VERIFIED)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dry_run_makes_no_mutating_call_and_proposes_the_fix(world, name):
    scenario = SCENARIOS[name]
    prepare(world, scenario)
    before = world.fingerprint()
    run = start_agent(world, Mode.DRY_RUN)
    run.passes(4)
    assert world.requests.mutating() == []
    assert run.reconciler.aws.counts.get(("ecs", "UpdateService", "blocked")) is None  # never even attempted
    failing = [p for p in run.proposals() if p.cause not in PREVENTION]
    action, _ = EXPECTED[name]
    assert {p.action for p in failing} == {action}
    proposal = failing[0]
    assert proposal.outcome in (Outcome.PROPOSED, Outcome.AWAITING_APPROVAL)
    assert proposal.mode is Mode.DRY_RUN
    assert proposal.evidence and proposal.plan.commands
    # Each command is an `aws` command, or one whose output a later command uses (`REVISION=$(aws ...)`).
    assert all(re.match(r"^([A-Z_]+=\$\()?aws ", command) for command in proposal.plan.commands)
    if action != "notify":
        assert proposal.plan.changes
    assert not before.diff(world.fingerprint())


def test_healthy_world_gets_prevention_advice_only(world):
    prepare(world, SCENARIOS["healthy"])
    run = start_agent(world)
    run.passes(3)
    assert run.applied() == []
    assert world.requests.mutating() == [] or all(
        r.operation in ("TagResource", "UntagResource") for r in world.requests.mutating()
    )
    causes = {p.cause for p in run.proposals()}
    assert causes <= PREVENTION


def test_storm_guard_pauses_the_cluster_and_says_so(world):
    prepare(world, SCENARIOS["storm"])
    run = start_agent(world)
    report = run.passes(3)
    assert run.applied() == []
    assert "UpdateService" not in {r.operation for r in world.requests.mutating()}
    assert report.paused_clusters == {"payments": "storm: 5 of 6 services failing at once"}
    assert run.metrics.registry.get_sample_value("ecs_medic_enforcement_paused", {"cluster": "payments"}) == 1
    rollbacks = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert len(rollbacks) == 5
    assert all(p.reason.startswith("enforcement paused in payments: storm") for p in rollbacks)
