"""The property: whatever kills and lost answers happen during a change, the world ends with exactly one
change. A kill is the process stopping at a chosen point, just before a request leaves or just after its
answer arrived (nothing after it runs); a lost answer is a request carried out whose answer never
arrives. Then a new process, with nothing in memory, carries on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.sim import SCENARIOS, World
from agent.state import decode_tags
from tests.e2e.conftest import START, agent_revisions, carried_out, policies_where, prepare, start_agent

WRITES = ("TagResource", "RegisterTaskDefinition", "UpdateService")
AUTO_MEMORY = {"raise_memory_on_oom": ("approval: manual", "approval: auto")}


class Killed(BaseException):
    """The process died: nothing after this point runs (not an Exception: no handler catches it)."""


@dataclass(frozen=True)
class Kill:
    operation: str
    nth: int
    after: bool  # after the answer arrived (else: just before the request leaves)


def _kill_at(gateway: Any, kill: Kill) -> None:
    seen = {"n": 0}
    event = f"{'after-call' if kill.after else 'before-send'}.*.{kill.operation}"

    def die(**_: Any) -> None:
        seen["n"] += 1
        if seen["n"] == kill.nth:
            raise Killed

    gateway.client("ecs").meta.events.register(event, die)


kills = st.none() | st.builds(Kill, st.sampled_from(WRITES), st.integers(1, 2), st.booleans())
lost = st.lists(st.tuples(st.sampled_from(WRITES), st.integers(1, 2)), max_size=3, unique=True)


# Each example runs a whole world (about 6 s): a fixed sample in the suite, so every run checks the same
# ones; raise max_examples to search further.
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kill=kills, lost_answers=lost)
def test_any_kills_and_lost_answers_during_a_change_end_with_exactly_one_change(tmp_path, kill, lost_answers):
    policies = policies_where(tmp_path / "policies", **AUTO_MEMORY)
    with World.start(seed=5, start_time=START) as world:
        prepare(world, SCENARIOS["oom-exit-137"])
        for operation, nth in lost_answers:
            world.faults.add(operation=operation, kind="lost_response", skip=nth - 1, count=1)
        first = start_agent(world, policies=policies)
        if kill is not None:
            _kill_at(first.reconciler.aws, kill)
        try:
            first.passes(1)
        except Killed:
            world.advance(30)
        world.faults.clear()
        restarted = start_agent(world, policies=policies)  # a new process: nothing in memory
        restarted.passes(8)
        assert carried_out(world, "RegisterTaskDefinition") == 1
        assert carried_out(world, "UpdateService") == 1
        assert agent_revisions(world, "api") == ["api:3"]
        assert world.service_state("prod", "api").task_definition.endswith("api:3")
        tags = {t["key"]: t["value"] for t in world.describe_service("prod", "api")["tags"]}
        state, problems = decode_tags(tags, world.now)
        assert problems == ()
        assert state.intent is None
        assert state.actions["raise_memory"].attempts == 1
