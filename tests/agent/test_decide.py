"""DECIDE as a pure function: which policy acts, and every safety rule that stops it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agent.approvals import Approval
from agent.decide import Outcome, applied, decide, storm_clusters
from agent.settings import Mode
from agent.state import ActionRecord, Attempt, Change, Episode, ServiceState, Verification
from tests.agent.fixtures import BUNDLED, NOW, assessment, at, limits, policies, view
from tests.diagnose.builders import container, deployment, service, stopped_task

TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
OOM = "OutOfMemoryError: Container killed due to memory usage"


def elb_cycling(name: str = "web", **view_args):
    description = service(name=name, deployments=[deployment(rollout_state="COMPLETED", reason="", revision=43)])
    description["loadBalancers"] = [{"targetGroupArn": TARGET_GROUP, "containerName": "app", "containerPort": 8080}]
    description["runningCount"] = 2
    tasks = [
        stopped_task(
            container(exit_code=137),
            stop_code="ServiceSchedulerInitiated",
            stopped_reason=f"Task failed ELB health checks in (target-group {TARGET_GROUP})",
            task_id=f"{i:032x}",
            service=name,
            revision=43,
            started_at=at(10 + i * 2),
            stopped_at=at(10 + i * 2 - 1.5),
        )
        for i in range(3)
    ]
    return view(description, stopped=tasks, **view_args)


def oom_loop(**view_args):
    description = service(deployments=[deployment(rollout_state="COMPLETED", reason="", revision=43)])
    description["runningCount"] = 1
    tasks = [
        stopped_task(container(exit_code=137, reason=OOM), task_id=f"{i:032x}", revision=43, stopped_at=at(i))
        for i in range(2)
    ]
    definition = {
        "family": "web",
        "revision": 43,
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [{"name": "app", "memory": 1024, "essential": True}],
    }
    return view(description, stopped=tasks, definitions={"web:43": definition}, **view_args)


def only(decisions):
    [decision] = decisions
    return decision.proposal


def test_elb_cycling_raises_the_grace_period_to_twice_the_lifetime():
    proposal = only(decide([assessment(elb_cycling())], BUNDLED, limits(), NOW))
    assert (proposal.action, proposal.policy, proposal.outcome) == (
        "raise_grace_period",
        "raise-grace-period-on-elb-cycling",
        Outcome.APPLY,
    )
    [change] = proposal.plan.changes
    assert (change.field, change.current, change.desired) == ("healthCheckGracePeriodSeconds", 0, 180)
    assert proposal.plan.commands == (
        "aws ecs update-service --cluster prod --service web --health-check-grace-period-seconds 180 --region us-east-1",
    )
    assert proposal.cause == "health_check_elb"
    assert any("Task failed ELB health checks" in line for line in proposal.evidence)


def test_dry_run_proposes_what_enforce_would_do():
    enforce = only(decide([assessment(elb_cycling())], BUNDLED, limits(), NOW))
    dry = only(decide([assessment(elb_cycling())], BUNDLED, limits(mode=Mode.DRY_RUN), NOW))
    assert dry.outcome is Outcome.PROPOSED
    assert dry.reason == "dry-run: no change made"
    assert (dry.id, dry.plan) == (enforce.id, enforce.plan)


def test_cooldown_holds():
    # The bundled policy's cooldown is 5 minutes (verdicts, not the cooldown, pace its attempts).
    state = ServiceState(actions={"raise_grace_period": ActionRecord(NOW - timedelta(minutes=3), 1, "verified", "p")})
    proposal = only(decide([assessment(elb_cycling(), state)], BUNDLED, limits(), NOW))
    assert proposal.outcome is Outcome.SKIPPED_COOLDOWN


# The bundled policy climbs a ladder after its raises; this one has no steps beyond its own remediation.
NO_LADDER = policies("""
apiVersion: ecs-medic/v1
kind: RemediationPolicy
metadata: {name: raise-grace-period-on-elb-cycling}
spec:
  when: {cause: health_check_elb, occurrences: 3, within: 15m}
  remediation: {action: raise_grace_period, params: {factor: 2, min_seconds: 60, max_seconds: 600}}
  cooldown: 30m
  maxAttempts: 3
  priority: 50
""")


def test_max_attempts_escalate():
    record = ActionRecord(NOW - timedelta(hours=2), 3, "not_effective", "p")
    tried = tuple(
        Attempt(f"t{i}", "raise_grace_period", 0, NOW - timedelta(hours=3 - i), "not_effective") for i in range(3)
    )
    episode = Episode("raise-grace-period-on-elb-cycling", "health_check_elb", NOW - timedelta(hours=3), 0, 3, tried)
    state = ServiceState(
        actions={"raise_grace_period": record}, episode=episode, changed_at=NOW - timedelta(minutes=20)
    )
    proposal = only(decide([assessment(elb_cycling(), state)], NO_LADDER, limits(), NOW))
    assert proposal.outcome is Outcome.SKIPPED_LIMIT
    assert proposal.reason.startswith("escalated: every step of the policy was tried (3 changes)")


def test_hourly_cap_counts_actions_already_taken():
    services = [assessment(elb_cycling("a")), assessment(elb_cycling("b")), assessment(view(service(name="c")))]
    decided = [
        (d.proposal.action, d.proposal.outcome)
        for d in decide(services, BUNDLED, limits(max_actions_per_hour=2), NOW, actions_in_last_hour=1)
    ]
    # One action was taken in the last hour, so one more fits; notify changes nothing and is not capped.
    assert decided == [
        ("raise_grace_period", Outcome.APPLY),
        ("raise_grace_period", Outcome.SKIPPED_LIMIT),
        ("notify", Outcome.APPLY),
    ]


def test_storm_guard_pauses_enforcement_in_the_cluster():
    failing = [assessment(elb_cycling(f"s{i}")) for i in range(3)]
    healthy = assessment(view(service(name="quiet", deployments=[deployment(rollout_state="COMPLETED", reason="")])))
    decisions = decide([*failing, replace(healthy)], BUNDLED, limits(), NOW)
    storm = [d.proposal for d in decisions if d.proposal and d.proposal.action == "raise_grace_period"]
    assert len(storm) == 3
    assert all(
        p.outcome is Outcome.PROPOSED and p.reason.startswith("enforcement paused in prod: storm") for p in storm
    )


@pytest.mark.parametrize(
    ("service_view", "settings", "reason"),
    [
        pytest.param(elb_cycling(), {"paused": True}, "enforcement paused: the pause switch is on", id="pause-switch"),
        pytest.param(elb_cycling(paused="upgrade"), {}, "enforcement paused: upgrade", id="cluster-pause-tag"),
        pytest.param(
            elb_cycling(managed=False), {}, "not managed: the service has no ecs-medic:managed=true tag", id="unmanaged"
        ),
    ],
)
def test_pause_and_managed_tag_turn_actions_into_proposals(service_view, settings, reason):
    proposal = only(decide([assessment(service_view)], BUNDLED, limits(**settings), NOW))
    assert (proposal.outcome, proposal.reason) == (Outcome.PROPOSED, reason)


def test_manual_approval_waits_then_applies_once_approved():
    first = only(decide([assessment(oom_loop())], BUNDLED, limits(), NOW))
    assert first.action == "raise_memory"
    assert first.outcome is Outcome.AWAITING_APPROVAL
    assert first.reason == f"manual approval: run `ecs-medic approve {first.id}`"
    given = Approval(first.id, NOW, NOW + timedelta(hours=1), "arn:aws:sts::123456789012:assumed-role/approver/alice")
    second = only(decide([replace(assessment(oom_loop()), approval=given)], BUNDLED, limits(), NOW))
    assert (second.id, second.outcome) == (first.id, Outcome.APPLY)
    expired = replace(given, expires=NOW - timedelta(seconds=1))
    third = only(decide([replace(assessment(oom_loop()), approval=expired)], BUNDLED, limits(), NOW))
    assert third.outcome is Outcome.AWAITING_APPROVAL
    other = replace(given, proposal_id="p-0000000000")
    fourth = only(decide([replace(assessment(oom_loop()), approval=other)], BUNDLED, limits(), NOW))
    assert fourth.outcome is Outcome.AWAITING_APPROVAL


def test_raise_memory_keeps_fargate_sizes_valid():
    plan = only(decide([assessment(oom_loop())], BUNDLED, limits(), NOW)).plan
    changes = {c.field: (c.current, c.desired) for c in plan.changes}
    assert changes == {
        "containerDefinitions[app].memory": (1024, 2048),
        "memory": ("1024", "2048"),
        "taskDefinition": ("web:43", "web:<next revision>"),
    }


def test_failure_after_deploy_rolls_back_before_anything_else():
    description = service(
        deployments=[
            deployment(failed_tasks=4, revision=43),
            deployment(
                "ecs-svc/1111111111111111111", status="ACTIVE", rollout_state="COMPLETED", reason="", revision=42
            ),
        ]
    )
    missing = (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref x: not found"
    )
    tasks = [
        stopped_task(
            container(reason=missing),
            stop_code="TaskFailedToStart",
            stopped_reason=missing,
            task_id=f"{i:032x}",
            revision=43,
            started_by="ecs-svc/2222222222222222222",
            stopped_at=at(i),
        )
        for i in range(3)
    ]
    proposal = only(decide([assessment(view(description, stopped=tasks))], BUNDLED, limits(), NOW))
    assert (proposal.action, proposal.cause) == ("rollback_task_definition", "image_not_found")
    [change] = proposal.plan.changes
    assert (change.current, change.desired) == ("web:43", "web:42")


def test_failing_deployment_without_breaker_enables_it_when_rollback_does_not_apply():
    description = service(
        deployments=[
            deployment(failed_tasks=4, revision=43),
            deployment(
                "ecs-svc/1111111111111111111", status="ACTIVE", rollout_state="COMPLETED", reason="", revision=42
            ),
        ]
    )
    tasks = [
        stopped_task(
            container(exit_code=137),
            stop_code="ServiceSchedulerInitiated",
            stopped_reason="Task failed container health checks",
            task_id=f"{i:032x}",
            revision=43,
            started_by="ecs-svc/2222222222222222222",
            stopped_at=at(i),
        )
        for i in range(3)
    ]
    proposal = only(decide([assessment(view(description, stopped=tasks))], BUNDLED, limits(), NOW))
    assert proposal.action == "enable_circuit_breaker"
    [change] = proposal.plan.changes
    assert change.desired == {"enable": True, "rollback": True}
    [call] = proposal.plan.calls
    assert call.params["deploymentConfiguration"]["maximumPercent"] == 200


def test_rollback_never_returns_to_a_bad_revision():
    description = service(deployments=[deployment(failed_tasks=4, revision=43)])
    tasks = [stopped_task(container(exit_code=1), task_id=f"{i:032x}", revision=43, stopped_at=at(i)) for i in range(3)]
    state = ServiceState(last_good="web:42", bad_revisions=("web:42",))
    decisions = decide([assessment(view(description, stopped=tasks), state)], BUNDLED, limits(), NOW)
    assert all(d.proposal is None or d.proposal.action != "rollback_task_definition" for d in decisions)


def _verifying(started, **change):
    planned = Change(
        token="t-1",
        action="raise_grace_period",
        policy="raise-grace-period-on-elb-cycling",
        proposal_id="p-1",
        cause="health_check_elb",
        step=0,
        changes=(),
        **change,
    )
    return ServiceState(
        actions={"raise_grace_period": ActionRecord(started, 1, "applied", "p-1")},
        verifying=Verification(planned, started, started, started + timedelta(minutes=10)),
        changed_at=started,
    )


def test_verification_judges_the_earlier_action_and_blocks_new_ones():
    # The stopped tasks of elb_cycling() all started before the change: no verdict from them.
    verifying = _verifying(NOW - timedelta(minutes=5))
    [waiting] = decide([assessment(elb_cycling(), verifying)], BUNDLED, limits(), NOW)
    assert (waiting.proposal, waiting.judged) == (None, None)
    [late] = decide([assessment(elb_cycling(), verifying)], BUNDLED, limits(), NOW + timedelta(minutes=6))
    assert late.judged.outcome is Outcome.NOT_EFFECTIVE
    assert late.judged.verdict.reason == "not at steady state 600 s after the change (the deadline)"
    assert late.state.actions["raise_grace_period"].outcome == "not_effective"
    steady = view(
        service(deployments=[deployment(rollout_state="COMPLETED", reason="", revision=43)]) | {"runningCount": 4}
    )
    [settling] = decide([assessment(steady, verifying)], BUNDLED, limits(), NOW)
    assert settling.judged is None
    assert settling.state.verifying.steady_since == NOW
    [fixed] = decide([assessment(steady, settling.state)], BUNDLED, limits(), NOW + timedelta(seconds=61))
    assert fixed.judged.outcome is Outcome.VERIFIED
    assert fixed.state.verifying is None
    assert fixed.state.last_good == "web:43"


def test_a_task_started_after_the_change_failing_the_same_way_is_not_effective_at_once():
    verifying = _verifying(NOW - timedelta(minutes=20))  # every task of elb_cycling() started after it
    [decision] = decide([assessment(elb_cycling(), verifying)], BUNDLED, limits(), NOW)
    assert decision.judged.outcome is Outcome.NOT_EFFECTIVE
    assert decision.judged.verdict.reason == "3 failure(s) with the same cause after the change"
    assert any("Task failed ELB health checks" in line for line in decision.judged.verdict.evidence)


def test_applying_records_the_attempt_and_starts_verification():
    [decision] = decide([assessment(elb_cycling())], BUNDLED, limits(), NOW)
    assert decision.proposal.outcome is Outcome.APPLY
    change = replace(decision.change, token="t-9")
    state = applied(decision.state, change, outputs={}, revision=None, now=NOW, summary=decision.proposal.plan.summary)
    record = state.actions["raise_grace_period"]
    assert (record.last_at, record.attempts, record.proposal_id) == (NOW, 1, decision.proposal.id)
    assert state.verifying.deadline == NOW + timedelta(minutes=15)  # the bundled policy's verify.timeout
    assert state.verifying.change.token == "t-9"
    assert (state.episode.policy, state.episode.step, state.episode.attempts) == (decision.proposal.policy, 0, 1)
    assert [a.outcome for a in state.episode.history] == ["applied"]
    assert state.changed_at == NOW


def test_dry_run_never_applies_anything():
    services = [assessment(elb_cycling("a")), assessment(oom_loop()), assessment(elb_cycling("b", paused="x"))]
    for decision in decide(services, BUNDLED, limits(mode=Mode.DRY_RUN), NOW):
        assert decision.proposal is None or decision.proposal.outcome is not Outcome.APPLY
        assert decision.change is None


def test_services_that_could_not_be_read_count_as_failing_in_the_storm_guard():
    failing = [assessment(elb_cycling(f"s{i}")) for i in range(2)]
    healthy = [
        assessment(view(service(name=f"ok{i}", deployments=[deployment(rollout_state="COMPLETED", reason="")])))
        for i in range(2)
    ]
    # Without the two unread services: 2 of 4 failing, not a storm. With them: 4 of 6 may be.
    assert storm_clusters([*failing, *healthy], limits()) == {}
    assert storm_clusters([*failing, *healthy], limits(), {"prod": 2}) == {
        "prod": "storm: 4 of 6 services failing at once (2 could not be read)"
    }
    assert storm_clusters([*failing, *healthy], limits(), {"prod": 4}) == {
        "prod": "reads failed for 4 of 8 services: nothing is changed on half a picture"
    }


def test_nothing_is_learnt_from_a_service_while_a_change_is_judged():
    steady = view(
        service(deployments=[deployment(rollout_state="COMPLETED", reason="", revision=44)]) | {"runningCount": 4}
    )
    verifying = replace(_verifying(NOW - timedelta(seconds=30)), last_good="web:43")
    [settling] = decide([assessment(steady, verifying)], BUNDLED, limits(), NOW)
    assert settling.judged is None
    assert settling.state.last_good == "web:43"  # web:44 is steady, but its change is not verified yet
    [fixed] = decide([assessment(steady, settling.state)], BUNDLED, limits(), NOW + timedelta(seconds=61))
    assert fixed.judged.outcome is Outcome.VERIFIED
    assert fixed.state.last_good == "web:44"


NOTIFY_LADDER = policies(
    """
apiVersion: ecs-medic/v1
kind: RemediationPolicy
metadata: {name: grace-then-person}
spec:
  when: {cause: health_check_elb, occurrences: 3, within: 15m}
  remediation: {action: raise_grace_period, params: {max_seconds: 60}}
  cooldown: 1m
  maxAttempts: 1
  escalation:
    - {action: notify}
"""
)


def test_a_ladder_that_ends_with_a_person_ends():
    # The grace period is already at its bound: nothing to raise, so the first step escalates at once ...
    capped = elb_cycling()
    capped.description["healthCheckGracePeriodSeconds"] = 60
    [first] = decide([assessment(capped)], NOTIFY_LADDER, limits(), NOW)
    assert (first.proposal.action, first.proposal.step, first.proposal.outcome) == ("notify", 1, Outcome.APPLY)
    assert first.escalations == ("step 1 -> notify",)
    state = applied(
        first.state,
        replace(first.change, token="t-1"),
        outputs={},
        revision=None,
        now=NOW,
        summary="tell a person",
        mutates=False,
    )
    assert [a.outcome for a in state.episode.history] == ["notified"]
    # ... the escalation is told once, and once the person was told, every step is spent: it says so.
    [second] = decide([assessment(capped, state)], NOTIFY_LADDER, limits(), NOW + timedelta(minutes=2))
    assert second.escalations == ("step 2 -> a person",)
    assert second.proposal.outcome is Outcome.SKIPPED_LIMIT
    assert second.proposal.reason.startswith("escalated: every step of the policy was tried")
    [third] = decide([assessment(capped, second.state)], NOTIFY_LADDER, limits(), NOW + timedelta(minutes=4))
    assert third.escalations == ()
    assert third.proposal.outcome is Outcome.SKIPPED_LIMIT
