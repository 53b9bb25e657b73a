"""Every change exactly once: lost answers, failed state writes, kills at the worst moment, a stalled
leader. Each test counts what the world carried out (changes, revisions, orphans), never what the
agent believes it did."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from agent.decide import Outcome
from agent.sim import SCENARIOS, World
from agent.state import decode_tags
from tests.e2e.conftest import agent_revisions, carried_out, policies_where, prepare, start_agent

AUTO_MEMORY = {"raise_memory_on_oom": ("approval: manual", "approval: auto")}


def state_of(world: World, cluster: str, service: str, now: datetime | None = None):
    tags = {t["key"]: t["value"] for t in world.describe_service(cluster, service).get("tags", [])}
    state, problems = decode_tags(tags, now or world.now)
    assert problems == ()
    return state


def test_lost_answers_never_make_a_change_twice(world, tmp_path):
    prepare(world, SCENARIOS["oom-exit-137"])
    policies = policies_where(tmp_path / "policies", **AUTO_MEMORY)
    world.faults.add(operation="RegisterTaskDefinition", kind="lost_response", count=1)
    world.faults.add(operation="UpdateService", kind="lost_response", count=1)
    run = start_agent(world, policies=policies)
    report = run.passes(1)
    [applied] = [p for p in report.proposals if p.action == "raise_memory"]
    assert applied.outcome is Outcome.APPLIED
    assert carried_out(world, "RegisterTaskDefinition") == 1
    assert carried_out(world, "UpdateService") == 1
    assert agent_revisions(world, "api") == ["api:3"]
    assert world.service_state("prod", "api").task_definition.endswith("api:3")
    state = state_of(world, "prod", "api")
    assert (state.intent, state.verifying.revision) == (None, "api:3")
    assert [a.outcome for a in state.episode.history] == ["applied"]


def test_a_write_that_keeps_losing_its_answer_is_checked_not_repeated(world):
    prepare(world, SCENARIOS["crash-loop"])
    world.faults.add(operation="UpdateService", kind="lost_response", count=5)
    run = start_agent(world)
    run.passes(1)
    assert carried_out(world, "UpdateService") == 1  # the first landed; the check read it back
    assert world.service_state("prod", "worker").task_definition.endswith("worker:1")


def test_a_state_write_that_fails_after_acting_fails_the_pass_and_is_not_acted_on_again(world):
    prepare(world, SCENARIOS["crash-loop"])
    # The intent is written (the first TagResource); every write of the outcome fails.
    world.faults.add(operation="TagResource", kind="server_error", skip=1, count=5)
    run = start_agent(world)
    first = run.passes(1)
    assert first.state_errors and first.failed_actions == 1
    assert carried_out(world, "UpdateService") == 1
    second = run.passes(1)
    assert second.state_errors == ()
    assert carried_out(world, "UpdateService") == 1
    state = state_of(world, "prod", "worker")
    assert state.intent is None
    assert state.actions["rollback_task_definition"].outcome == "applied"
    # A new process with only the tags (the in-memory copy lost) does not act again either.
    restarted = start_agent(world)
    restarted.passes(4)
    assert carried_out(world, "UpdateService") == 1


def test_once_exits_1_when_the_outcome_of_a_change_could_not_be_recorded(world, monkeypatch, capsys):
    from agent.cli import main  # noqa: PLC0415 - the command, configured by the environment

    prepare(world, SCENARIOS["crash-loop"])
    for key, value in world.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    world.faults.add(operation="TagResource", kind="server_error", skip=1, count=5)
    assert main(["once"]) == 1
    assert "state_not_saved" in capsys.readouterr().err
    assert carried_out(world, "UpdateService") == 1


def test_an_intent_that_cannot_be_recorded_changes_nothing(world):
    prepare(world, SCENARIOS["crash-loop"])
    world.faults.add(operation="TagResource", kind="server_error", count=5)
    run = start_agent(world)
    [proposal] = [p for p in run.passes(1).proposals if p.action == "rollback_task_definition"]
    assert proposal.outcome is Outcome.FAILED
    assert proposal.reason.startswith("not started: its intent could not be recorded")
    assert carried_out(world, "UpdateService") == 0


# --- kills at chosen points: the agent is a real process, killed with SIGKILL ----------------------


def _agent(world: World, policies, *argv: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        **world.environment,
        "ECS_MEDIC_MODE": "enforce",
        "ECS_MEDIC_POLICIES": str(policies),
        "ECS_MEDIC_MAX_ACTION_SECONDS": "2",
        "ECS_MEDIC_LOG_FORMAT": "json",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "once", *argv],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_while_held(world: World, policies) -> None:
    """Run the agent until the world holds the answer of the faulted call, then SIGKILL it there."""
    process = _agent(world, policies)
    try:
        assert world.faults.hanging.wait(60), process.stderr.read() if process.poll() is not None else "no hang"
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        world.faults.release()
        world.faults.clear()


def _run_to_completion(world: World, policies) -> str:
    time.sleep(2.5)  # the dead agent's change had 2 s; nothing of it can be sent after that
    process = _agent(world, policies)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (0, 1), err
    return err


@pytest.fixture
def live_world():
    """A world whose clock is the real one: the agent runs in its own process, on the real clock."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as started:
        yield started


@pytest.mark.parametrize("operation", ["RegisterTaskDefinition", "UpdateService"])
def test_killed_mid_change_the_restarted_agent_finishes_it_exactly_once(live_world, tmp_path, operation):
    world = live_world
    prepare(world, SCENARIOS["oom-exit-137"])
    policies = policies_where(tmp_path / "policies", **AUTO_MEMORY)
    world.faults.add(operation=operation, kind="hang", count=1)
    _kill_while_held(world, policies)
    assert carried_out(world, operation) == 1
    err = _run_to_completion(world, policies)
    assert '"change_recovered"' in err
    assert '"outcome": "completed"' in err
    _run_to_completion(world, policies)  # and again: the OOM kills of api:2 are old evidence now
    assert carried_out(world, "RegisterTaskDefinition") == 1
    assert carried_out(world, "UpdateService") == 1
    assert agent_revisions(world, "api") == ["api:3"]
    assert world.service_state("prod", "api").task_definition.endswith("api:3")
    state = state_of(world, "prod", "api", datetime.now(UTC))
    assert state.intent is None
    assert state.actions["raise_memory"].attempts == 1
    assert state.verifying.revision == "api:3"


def test_killed_after_the_intent_before_any_change_nothing_is_left_behind(live_world, tmp_path):
    world = live_world
    prepare(world, SCENARIOS["oom-exit-137"])
    policies = policies_where(tmp_path / "policies", **AUTO_MEMORY)
    world.faults.add(operation="TagResource", kind="hang", count=1)  # the intent's write
    _kill_while_held(world, policies)
    assert carried_out(world, "RegisterTaskDefinition") == 0
    err = _run_to_completion(world, policies)
    assert '"outcome": "abandoned"' in err
    # The next pass decides afresh and makes the change, once.
    _run_to_completion(world, policies)
    assert carried_out(world, "RegisterTaskDefinition") == 1
    assert agent_revisions(world, "api") == ["api:3"]
    assert world.service_state("prod", "api").task_definition.endswith("api:3")


def test_a_revision_registered_but_never_used_is_deregistered_when_the_change_cannot_finish(world, tmp_path):
    prepare(world, SCENARIOS["oom-exit-137"])
    policies = policies_where(tmp_path / "policies", **AUTO_MEMORY)
    world.faults.add(operation="UpdateService", kind="server_error", count=100)  # it never goes through
    run = start_agent(world, policies=policies)
    [failed] = [p for p in run.passes(1).proposals if p.action == "raise_memory"]
    assert failed.outcome is Outcome.FAILED
    assert carried_out(world, "RegisterTaskDefinition") == 1
    assert agent_revisions(world, "api") == []  # registered, then deregistered: no orphan
    assert world.service_state("prod", "api").task_definition.endswith("api:2")
    assert state_of(world, "prod", "api").intent is None


def test_a_restarted_agent_finishes_the_record_of_a_change_whose_outcome_was_not_saved(world):
    prepare(world, SCENARIOS["crash-loop"])
    world.faults.add(operation="TagResource", kind="server_error", skip=1, count=5)
    start_agent(world).passes(1)  # acted; the intent stayed in the tags, the outcome did not reach them
    assert state_of(world, "prod", "worker").intent is not None
    restarted = start_agent(world)  # a new process: its memory is empty
    with structlog.testing.capture_logs() as lines:
        restarted.passes(4)  # 2 minutes: past the dead writer's deadline
    [recovered] = [line for line in lines if line["event"] == "change_recovered"]
    assert (recovered["outcome"], recovered["action"]) == ("completed", "rollback_task_definition")
    assert carried_out(world, "UpdateService") == 1
    state = state_of(world, "prod", "worker")
    assert state.intent is None
    assert state.bad_revisions == ("worker:2",)
