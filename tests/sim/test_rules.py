"""The world's pure rules, on their own: placement, the circuit breaker, health checks, IAM, profiles."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.sim import wording
from agent.sim.faults import FaultInjector, FaultKind, Protocol, error_reply
from agent.sim.health import HealthCheck, target_verdict
from agent.sim.iam_policy import ECR_TOKEN_ACTION, is_allowed, missing_pull_permission
from agent.sim.placement import InstanceCapacity, Placed, TaskNeeds, Unplaceable, instances_needed, lacking, place
from agent.sim.profiles import AppProfile, plan_container
from agent.sim.recording import is_mutating
from agent.sim.rollout import (
    breaker_threshold,
    launch_backoff_seconds,
    merged_configuration,
    new_deployment_id,
    rolling_limits,
)

# --- placement -------------------------------------------------------------------------------------------


def test_placement_spreads_over_the_least_busy_instance() -> None:
    instances = [
        InstanceCapacity("a" * 32, cpu_free=1024, memory_free=2048, running_tasks=2),
        InstanceCapacity("b" * 32, cpu_free=1024, memory_free=2048, running_tasks=1),
    ]
    assert place(TaskNeeds(cpu=512, memory=512), instances) == Placed("b" * 32)


@pytest.mark.parametrize(
    ("needs", "resource"),
    [
        pytest.param(TaskNeeds(cpu=2048, memory=512), "CPU", id="cpu"),
        pytest.param(TaskNeeds(cpu=256, memory=4096), "MEMORY", id="memory"),
        pytest.param(TaskNeeds(cpu=256, memory=256, ports=frozenset({80})), "PORTS", id="ports"),
    ],
)
def test_unplaceable_names_the_closest_instance_and_what_it_lacks(needs: TaskNeeds, resource: str) -> None:
    instances = [
        InstanceCapacity("a" * 32, cpu_free=1024, memory_free=1024, ports_used=frozenset({80})),
        InstanceCapacity("b" * 32, cpu_free=512, memory_free=512, ports_used=frozenset({80})),
    ]
    assert place(needs, instances) == Unplaceable(closest="a" * 32, resource=resource)


def test_no_instances_at_all() -> None:
    assert place(TaskNeeds(cpu=1, memory=1), []) == Unplaceable(closest=None, resource=None)


@given(
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 8192), st.integers(0, 5)), max_size=6),
    st.integers(1, 4096),
    st.integers(1, 8192),
)
def test_placement_never_overcommits(free: list[tuple[int, int, int]], cpu: int, memory: int) -> None:
    instances = [InstanceCapacity(f"{i:032x}", c, m, running_tasks=r) for i, (c, m, r) in enumerate(free)]
    needs = TaskNeeds(cpu=cpu, memory=memory)
    result = place(needs, instances)
    if isinstance(result, Placed):
        chosen = next(i for i in instances if i.container_instance_id == result.container_instance_id)
        assert lacking(needs, chosen) == []
    else:
        assert all(lacking(needs, i) for i in instances)


def test_instances_needed_packs_first_fit() -> None:
    needs = [TaskNeeds(cpu=1024, memory=512)] * 5
    assert instances_needed(needs, instance_cpu=2048, instance_memory=4096) == 3
    assert instances_needed([TaskNeeds(cpu=4096, memory=1)], instance_cpu=2048, instance_memory=4096) == 0


# --- rollout ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("desired", "threshold"), [(1, 3), (2, 3), (6, 3), (7, 4), (25, 13), (400, 200), (800, 200)])
def test_circuit_breaker_threshold_is_half_the_desired_count_within_3_and_200(desired: int, threshold: int) -> None:
    assert breaker_threshold(desired) == threshold


def test_launch_backoff_doubles_up_to_fifteen_minutes() -> None:
    assert [launch_backoff_seconds(n) for n in range(6)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    assert launch_backoff_seconds(30) == 900.0


def test_deployment_ids_look_like_ecs_ones() -> None:
    rng = random.Random(1)  # noqa: S311 - ids, not secrets
    ids = {new_deployment_id(rng) for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("ecs-svc/") and len(i) == 8 + 19 and i[8:].isdigit() for i in ids)


def test_partial_deployment_configuration_keeps_the_rest() -> None:
    previous = merged_configuration(None, {"maximumPercent": 150})
    merged = merged_configuration(previous, {"deploymentCircuitBreaker": {"enable": True}})
    assert merged == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": False},
        "maximumPercent": 150,
        "minimumHealthyPercent": 100,
    }


def test_rolling_limits() -> None:
    assert rolling_limits(4, merged_configuration(None, None)) == (8, 4)
    assert rolling_limits(2, {"maximumPercent": 100, "minimumHealthyPercent": 100}) == (3, 2)


# --- health checks ---------------------------------------------------------------------------------------

CHECK = HealthCheck(interval_seconds=30, healthy_threshold=3, unhealthy_threshold=2)


def test_slow_start_without_grace_is_stopped_after_the_unhealthy_threshold() -> None:
    verdict = target_verdict(ready_after=120, check=CHECK, grace_after=0)
    assert verdict.unhealthy_after == 60
    assert verdict.stop_after == 60
    assert verdict.healthy_after == 180


def test_enough_grace_lets_a_slow_start_turn_healthy() -> None:
    verdict = target_verdict(ready_after=120, check=CHECK, grace_after=240)
    assert verdict.stop_after is None
    assert verdict.healthy_after == 180


def test_a_fast_app_is_never_unhealthy() -> None:
    verdict = target_verdict(ready_after=10, check=CHECK, grace_after=0)
    assert verdict == target_verdict(ready_after=10, check=CHECK, grace_after=300)
    assert verdict.unhealthy_after is None
    assert verdict.healthy_after == 90


def test_an_app_that_never_answers_is_stopped_once_grace_ends() -> None:
    verdict = target_verdict(ready_after=None, check=CHECK, grace_after=100)
    assert verdict.healthy_after is None
    assert verdict.stop_after == 100


# --- IAM -------------------------------------------------------------------------------------------------

REPO = "arn:aws:ecr:us-east-1:123456789012:repository/web"


def _policy(*statements: dict[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_pull_needs_token_and_pull_actions() -> None:
    login = _policy({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"})
    pull = _policy({"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/*"})
    assert missing_pull_permission([], REPO) == ECR_TOKEN_ACTION
    assert missing_pull_permission([login], REPO) == "ecr:BatchGetImage"
    assert missing_pull_permission([login, pull], REPO) is None


def test_explicit_deny_wins_and_actions_match_case_insensitively() -> None:
    allow = _policy({"Effect": "Allow", "Action": "ECR:BatchGet*", "Resource": "*"})
    deny = _policy({"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": REPO})
    assert is_allowed([allow], "ecr:BatchGetImage", REPO)
    assert not is_allowed([allow, deny], "ecr:BatchGetImage", REPO)
    assert not is_allowed([_policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})], "ecr:BatchGetImage", REPO)


# --- profiles --------------------------------------------------------------------------------------------


def test_memory_above_the_hard_limit_is_an_oom_kill() -> None:
    plan = plan_container(AppProfile.memory_hungry(900, ramp_seconds=40), 512)
    assert (plan.exit_code, plan.reason) == (137, wording.OOM_REASON)
    assert plan.exit_after == pytest.approx(40 * 512 / 900)


def test_without_a_hard_limit_memory_never_kills() -> None:
    plan = plan_container(AppProfile.memory_hungry(900), None)
    assert plan.exit_after is None
    assert plan.ready_after == 10.0


def test_crash_and_bad_entrypoint() -> None:
    crash = plan_container(AppProfile.crashing("boom", after_seconds=3), 512)
    assert (crash.exit_code, crash.exit_after, crash.exit_log, crash.ready_after) == (1, 3, ("boom",), None)
    entry = plan_container(AppProfile.bad_entrypoint("/start.sh"), 512)
    assert entry.exit_code == 255
    assert entry.start_log == ("exec /start.sh: exec format error",)


# --- wording ---------------------------------------------------------------------------------------------


def test_wording_matches_ecs() -> None:
    assert wording.placement_insufficient("web", "0" * 32, "CPU") == (
        "(service web) was unable to place a task because no container instance met all of its requirements. "
        f"The closest matching (container-instance {'0' * 32}) has insufficient CPU units available. "
        "For more information, see the Troubleshooting section."
    )
    assert wording.started_tasks("web", ["a", "b"]) == "(service web) has started 2 tasks: (task a) (task b)."
    assert (
        wording.rollout_rolling_back("ecs-svc/1")
        == "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1."
    )


# --- recording and faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "mutating"),
    [
        ("DescribeServices", False),
        ("ListTasks", False),
        ("GetLogEvents", False),
        ("BatchGetImage", False),
        ("ReceiveMessage", False),
        ("UpdateService", True),
        ("TagResource", True),
        ("PutItem", True),
        ("DeleteMessage", True),
        ("SetDesiredCapacity", True),
    ],
)
def test_mutating_operations(operation: str, mutating: bool) -> None:
    assert is_mutating(operation) is mutating


def test_fault_decisions_are_reproducible() -> None:
    def run(seed: int) -> list[bool]:
        faults = FaultInjector(seed)
        faults.add(kind="throttle", operation="DescribeServices", rate=0.5)
        return [bool(faults.decide("ecs", "DescribeServices")) for _ in range(40)]

    assert run(3) == run(3)
    assert 5 < sum(run(3)) < 35


def test_fault_count_caps_injections() -> None:
    faults = FaultInjector(0)
    faults.add(kind=FaultKind.SERVER_ERROR, operation="UpdateService", count=2)
    assert [bool(faults.decide("ecs", "UpdateService")) for _ in range(4)] == [True, True, False, False]
    assert faults.decide("ecs", "DescribeServices") == []


def test_error_bodies_per_protocol() -> None:
    throttle = error_reply(Protocol.JSON, "ecs", FaultKind.THROTTLE)
    assert throttle.status == 400
    assert json.loads(throttle.body) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    query = error_reply(Protocol.QUERY, "autoscaling", FaultKind.THROTTLE)
    assert b"<Code>Throttling</Code>" in query.body
    assert b"<Message>Rate exceeded</Message>" in query.body
    server = error_reply(Protocol.JSON, "ecs", FaultKind.SERVER_ERROR)
    assert server.status == 500
    assert json.loads(server.body)["__type"] == "ServerException"
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultInjector().add(kind="throttle", rate=1.5)
