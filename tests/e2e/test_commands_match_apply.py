"""A plan is data: the `aws` commands people are shown and the calls the agent makes come from the same
calls, so they cannot drift apart. Each action's printed commands are run with the real `aws` CLI
against one world, its calls applied by the agent to an identical world, and the two must end equal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.act import Executor, record
from agent.actions import REGISTRY, Plan
from agent.settings import Mode
from agent.sim import SCENARIOS, World
from agent.sim.fingerprint import Fingerprint
from tests.e2e.conftest import START, prepare, start_agent

AWS = Path(sys.executable).parent / "aws"
BASH = shutil.which("bash") or "/bin/bash"
CASES = {
    "rollback_task_definition": "crash-loop",
    "raise_grace_period": "health-check-cycling",
    "enable_circuit_breaker": "deployment-no-circuit-breaker",
    "scale_capacity_provider": "placement-cpu",
    "raise_memory": "oom-exit-137",
}

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed (printed commands use it)")


def _plan(world: World, action: str) -> Plan:
    run = start_agent(world, Mode.DRY_RUN)
    [proposal] = [p for p in run.passes(1).proposals if p.action == action]
    return proposal.plan


def _run_commands(world: World, plan: Plan) -> None:
    script = "set -euo pipefail\n" + "\n".join(plan.commands) + "\n"
    environment = {**os.environ, **world.environment, "PATH": f"{AWS.parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [BASH, "-c", script], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{script}\n{result.stderr}"


def _apply(world: World, plan: Plan) -> dict[str, str]:
    run = start_agent(world)
    return Executor(run.reconciler.aws, lambda: None).run(
        [record(c) for c in plan.calls], token="t-1", budget_seconds=60
    )


def _changes(before: Fingerprint, after: Fingerprint) -> dict[str, object]:
    """What changed, and to what: dotted path -> new value."""

    def value(path: str) -> object:
        node: object = after.state
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    return {path: value(path) for path in before.diff(after)}


def _two_worlds(scenario: str, step) -> tuple[dict[str, object], dict[str, object]]:
    """What the printed commands changed, and what apply changed, each in a fresh copy of the scenario.
    (The copies differ in the ids EC2 hands out, which neither side touches.)"""
    made = []
    for how in ("commands", "apply"):
        with World.start(seed=3, start_time=START) as world:
            prepare(world, SCENARIOS[scenario])
            before, after = step(world, how)
            made.append(_changes(before, after))
    by_commands, by_apply = made
    return by_commands, by_apply


@pytest.mark.parametrize("action", sorted(CASES))
def test_printed_commands_do_exactly_what_apply_does(action):
    def step(world: World, how: str) -> tuple[Fingerprint, Fingerprint]:
        plan = _plan(world, action)
        before = world.fingerprint()
        if how == "commands":
            _run_commands(world, plan)
        else:
            _apply(world, plan)
        return before, world.fingerprint()

    by_commands, by_apply = _two_worlds(CASES[action], step)
    assert by_commands, "the commands changed nothing"
    assert by_commands == by_apply


@pytest.mark.parametrize("action", ["raise_memory", "raise_grace_period"])
def test_printed_undo_commands_do_exactly_what_undo_does(action):
    def step(world: World, how: str) -> tuple[Fingerprint, Fingerprint]:
        plan = _plan(world, action)
        outputs = _apply(world, plan)
        service = start_agent(world).reconciler._observer.observe(world.now).services
        [view] = [v for v in service if v.cluster == CASES_CLUSTER[action][0] and v.name == CASES_CLUSTER[action][1]]
        undo = REGISTRY[action].revert(view, plan.changes, outputs)
        assert undo is not None
        before = world.fingerprint()
        if how == "commands":
            _run_commands(world, undo)
        else:
            _apply(world, undo)
        return before, world.fingerprint()

    by_commands, by_apply = _two_worlds(CASES[action], step)
    assert by_commands, "the undo changed nothing"
    assert by_commands == by_apply


CASES_CLUSTER = {"raise_memory": ("prod", "api"), "raise_grace_period": ("prod", "search")}
