"""After a change, the agent keeps driving toward a healthy service with what it observes next: a fix
that did not help is seen as soon as a task started after it fails, the next attempt is sized from
that new evidence, spent attempts escalate along the policy's ladder, and a change that did not help is
undone when the policy says so (never one that was verified)."""

from __future__ import annotations

from datetime import timedelta

from agent.decide import Kind, Outcome
from agent.sim import SCENARIOS, AppProfile
from agent.state import decode_tags
from tests.e2e.conftest import agent_revisions, policies_where, prepare, start_agent

GRACE = "raise_grace_period_on_elb_cycling"


def test_a_grace_period_that_was_not_enough_is_seen_early_and_raised_again_from_the_new_evidence(world):
    prepare(world, SCENARIOS["health-check-cycling"])
    world.push_image("search", "v3", AppProfile.slow_start(300))  # five minutes to warm its caches
    world.deploy("prod", "search", image="search:v3")
    world.advance(600)
    run = start_agent(world, cooldown=60)
    for _ in range(40):
        run.passes(1)
        if [v for r in run.reports for v in r.verifications if v[3] is Outcome.VERIFIED]:
            break
    raises = [
        (r.finished_at, p) for r in run.reports for p in r.proposals if p.outcome is Outcome.APPLIED and p.plan.mutates
    ]
    assert [p.action for _, p in raises] == ["raise_grace_period", "raise_grace_period"]
    (first_at, _), (second_at, second) = raises
    grace = [p.plan.changes[0].desired for _, p in raises]
    assert grace[1] > grace[0]
    verdicts = [(r.finished_at, v) for r in run.reports for v in r.verdicts]
    not_effective_at = next(at for at, v in verdicts if v.outcome is Outcome.NOT_EFFECTIVE)
    # Seen as soon as a task started after the change failed, long before the 10-minute deadline ...
    assert not_effective_at - first_at < timedelta(minutes=8)
    assert "failure(s) with the same cause after the change" in next(
        v.reason for _, v in verdicts if v.outcome is Outcome.NOT_EFFECTIVE
    )
    # ... and the next attempt followed at the next pass the cooldown allowed.
    assert second_at - not_effective_at <= timedelta(minutes=1)
    assert second.attempt == 2 and second.step == 0
    assert [a.outcome for a in second.history] == ["not_effective"]
    assert [v.outcome for _, v in verdicts] == [Outcome.NOT_EFFECTIVE, Outcome.VERIFIED]
    assert world.service_state("prod", "search").steady


def test_spent_attempts_escalate_along_the_policys_ladder(world, tmp_path):
    world.add_fargate_cluster("prod")
    world.push_image("search", "v1", AppProfile.slow_start(20))
    world.add_service("prod", "search", image="search:v1", grace_period=0, tags={"ecs-medic:managed": "true"})
    world.advance(300)
    world.push_image("search", "v2", AppProfile.slow_start(900))  # no grace period within bounds helps
    world.deploy("prod", "search", image="search:v2")
    world.advance(900)
    # One raise, then the ladder: roll back to the last good revision, then a person.
    policies = policies_where(tmp_path / "p", **{GRACE: ("  maxAttempts: 2\n", "  maxAttempts: 1\n")})
    run = start_agent(world, policies=policies)
    run.passes(40)
    applied = [p for p in run.proposals() if p.outcome is Outcome.APPLIED and p.policy.startswith("raise-grace")]
    assert [(p.action, p.step) for p in applied] == [("raise_grace_period", 0), ("rollback_task_definition", 1)]
    rollback = applied[1]
    assert rollback.ladder == ("raise_grace_period", "rollback_task_definition", "notify")
    assert [(a.action, a.outcome) for a in rollback.history] == [("raise_grace_period", "not_effective")]
    escalated = [e for r in run.reports for e in r.escalations]
    assert [(e[2], e[3]) for e in escalated] == [
        ("raise-grace-period-on-elb-cycling", "step 1 -> rollback_task_definition")
    ]
    sample = run.metrics.registry.get_sample_value
    assert (
        sample(
            "ecs_medic_remediations_total",
            {
                "cluster": "prod",
                "service": "search",
                "policy": "raise-grace-period-on-elb-cycling",
                "action": "rollback_task_definition",
                "outcome": "escalated",
            },
        )
        == 1
    )
    assert world.service_state("prod", "search").steady
    assert world.service_state("prod", "search").task_definition.endswith("search:1")  # the last good one


def test_more_memory_that_did_not_help_is_undone_and_never_left_behind(world, tmp_path):
    prepare(world, SCENARIOS["oom-exit-137"])
    world.push_image("api", "v3", AppProfile.memory_hungry(20000))  # a leak: no raise within bounds helps
    world.deploy("prod", "api", image="api:v3")
    world.advance(300)
    policies = policies_where(tmp_path / "p", raise_memory_on_oom=("approval: manual", "approval: auto"))
    run = start_agent(world, policies=policies, cooldown=60)
    run.passes(40)
    done = [
        (p.action, p.kind, p.outcome)
        for p in run.proposals()
        if p.outcome in (Outcome.APPLIED, Outcome.REVERTED) and p.plan.mutates
    ]
    # A raise that did not help is not undone before the next change: the next one replaces it (the
    # service goes straight to the next revision) and deregisters it; then the ladder rolls back to the
    # last revision that was steady, deregistering the second raise. Three changes, nothing left behind.
    assert done == [
        ("raise_memory", Kind.REMEDIATION, Outcome.APPLIED),
        ("raise_memory", Kind.REMEDIATION, Outcome.APPLIED),
        ("rollback_task_definition", Kind.REMEDIATION, Outcome.APPLIED),
    ]
    assert [p for p in run.proposals() if p.kind is Kind.REVERT] == []
    assert agent_revisions(world, "api") == []  # every revision it registered is deregistered
    [second, rollback] = [p for p in run.proposals() if p.outcome is Outcome.APPLIED and p.plan.mutates][1:]
    assert second.plan.calls[-1].operation == "DeregisterTaskDefinition"
    assert [a.outcome for a in rollback.history] == ["superseded", "not_effective"]
    assert rollback.plan.calls[-1].operation == "DeregisterTaskDefinition"
    assert world.service_state("prod", "api").task_definition.endswith("api:1")  # the last one that was steady
    tags = {t["key"]: t["value"] for t in world.describe_service("prod", "api")["tags"]}
    state, _ = decode_tags(tags, world.now)
    assert {"api:4", "api:5"} <= set(state.bad_revisions)


def test_more_memory_that_did_not_help_is_undone_when_nothing_replaces_it(world, tmp_path):
    prepare(world, SCENARIOS["oom-exit-137"])
    world.push_image("api", "v3", AppProfile.memory_hungry(20000))
    world.deploy("prod", "api", image="api:v3")
    world.advance(300)
    # One raise, then only a person: nothing replaces the raise, so it is undone.
    ladder = ("    - action: rollback_task_definition\n      attempts: 1\n", "")
    policies = policies_where(
        tmp_path / "p",
        raise_memory_on_oom=("approval: manual", "approval: auto"),
    )
    text = (policies / "raise-memory-on-oom.yaml").read_text()
    (policies / "raise-memory-on-oom.yaml").write_text(
        text.replace(*ladder).replace("  maxAttempts: 2\n", "  maxAttempts: 1\n")
    )
    run = start_agent(world, policies=policies, cooldown=60)
    run.passes(30)
    done = [(p.action, p.kind, p.outcome) for p in run.proposals() if p.outcome in (Outcome.APPLIED, Outcome.REVERTED)]
    assert done[:2] == [
        ("raise_memory", Kind.REMEDIATION, Outcome.APPLIED),
        ("raise_memory", Kind.REVERT, Outcome.REVERTED),
    ]
    assert agent_revisions(world, "api") == []
    undo = next(p for p in run.proposals() if p.kind is Kind.REVERT and p.outcome is Outcome.REVERTED)
    assert [(c.field, c.desired) for c in undo.plan.changes] == [("taskDefinition", "api:3")]  # back where it was


def test_a_verified_change_is_never_undone(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    run.passes(10)
    assert [v[3] for r in run.reports for v in r.verifications] == [Outcome.VERIFIED]
    assert [p for p in run.proposals() if p.kind is Kind.REVERT] == []
    assert world.service_state("prod", "worker").task_definition.endswith("worker:1")
