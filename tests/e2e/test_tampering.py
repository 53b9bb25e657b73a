"""Never fooled: state and approvals forged by anyone who can tag a service, reads that fail during a
storm, and one service whose data breaks the agent. Each of these once made the agent act wrongly."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import pytest
import structlog

from agent import approvals
from agent.actions import REGISTRY, Action, Context, Params, Plan
from agent.decide import Outcome
from agent.demo import approve, approver_gateway
from agent.sim import SCENARIOS
from agent.state import ActionRecord, Change, ServiceState, Verification, encode_tags
from tests.e2e.conftest import carried_out, policies_where, prepare, start_agent


def tag(world, cluster: str, service: str, tags: dict[str, str]) -> None:
    arn = world.describe_service(cluster, service)["serviceArn"]
    world.client("ecs").tag_resource(resourceArn=arn, tags=[{"key": k, "value": v} for k, v in tags.items()])


def test_reads_that_fail_during_a_storm_count_as_failing_and_nothing_is_changed(world):
    prepare(world, SCENARIOS["storm"])
    # Stopped tasks of three of the five failing services cannot be read: throttled past every retry.
    world.faults.add(kind="throttle", operation="ListTasks", count=15)
    run = start_agent(world)
    report = run.passes(1)
    assert report.unread == {"payments": 3}
    assert report.result == "partial"
    assert report.paused_clusters["payments"] == (
        "reads failed for 3 of 6 services: nothing is changed on half a picture"
    )
    assert carried_out(world, "UpdateService") == 0
    assert run.applied() == []


def test_a_cluster_whose_reads_mostly_failed_gets_no_action(world):
    prepare(world, SCENARIOS["crash-loop"])
    for index in range(11):  # ten services and more: DescribeServices reads them in two batches
        name = f"svc{index:02d}"
        world.push_image(name, "v1")
        world.add_service("prod", name, image=f"{name}:v1")
    world.advance(120)
    world.faults.add(kind="server_error", operation="DescribeServices", count=5)  # the first batch, every retry
    run = start_agent(world)
    report = run.passes(1)
    assert report.unread == {"prod": 10}
    assert report.paused_clusters["prod"] == (
        "reads failed for 10 of 12 services: nothing is changed on half a picture"
    )
    [proposal] = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert proposal.outcome is Outcome.PROPOSED
    assert carried_out(world, "UpdateService") == 0


def test_an_approval_tag_written_by_hand_or_copied_is_worth_nothing(world):
    prepare(world, SCENARIOS["oom-exit-137"])
    run = start_agent(world)
    [waiting] = [p for p in run.passes(1).proposals if p.action == "raise_memory"]
    assert waiting.outcome is Outcome.AWAITING_APPROVAL
    expires = int((world.now + timedelta(days=3650)).timestamp())
    forged = {
        approvals.APPROVAL_TAG: f"{waiting.id} {int(world.now.timestamp())} {expires} c2lnbmF0dXJl",
        approvals.APPROVER_TAG: "arn:aws:sts::123456789012:assumed-role/ecs-medic-approver/mallory",
    }
    tag(world, "prod", "api", forged)
    with structlog.testing.capture_logs() as lines:
        report = run.passes(1)
    [still] = [p for p in report.proposals if p.action == "raise_memory"]
    assert still.outcome is Outcome.AWAITING_APPROVAL
    assert any(line["event"] == "state_ignored" and line["tag"] == approvals.APPROVAL_TAG for line in lines), (
        "the forged approval is named"
    )
    # A genuine approval of the same proposal, copied to another service, does not approve it there.
    approve(world, approver_gateway(world), waiting.service_arn, waiting.id, world.now)
    tags = {t["key"]: t["value"] for t in world.describe_service("prod", "api")["tags"]}
    signed, _ = approvals.decode(tags)
    assert signed is not None
    other = world.describe_service("prod", "api")["serviceArn"].replace("/api", "/other")
    assert approvals.verify(run.reconciler.aws, world.approval_key_id, other, signed) is False
    report = run.passes(1)
    [applied] = [p for p in report.proposals if p.action == "raise_memory"]
    assert applied.outcome is Outcome.APPLIED  # the genuine one, on its own service


def test_an_approval_longer_than_the_cap_is_refused(world):
    prepare(world, SCENARIOS["oom-exit-137"])
    run = start_agent(world, approval_max_ttl_seconds=3600)
    [waiting] = [p for p in run.passes(1).proposals if p.action == "raise_memory"]
    approver = approver_gateway(world)
    tags = {t["key"]: t["value"] for t in world.describe_service("prod", "api")["tags"]}
    approvals.grant(
        approver,
        key_id=world.approval_key_id,
        service_arn=waiting.service_arn,
        tags=tags,
        proposal_id=waiting.id,
        now=world.now,
        ttl=timedelta(days=3650),
    )
    [still] = [p for p in run.passes(1).proposals if p.action == "raise_memory"]
    assert still.outcome is Outcome.AWAITING_APPROVAL


def test_a_forged_verification_deadline_does_not_silence_a_service(world):
    prepare(world, SCENARIOS["crash-loop"])
    change = Change("t", "rollback_task_definition", "rollback-bad-deploy", "p-1", "app_crash", 0, ())
    forever = ServiceState(verifying=Verification(change, world.now, world.now, world.now + timedelta(days=3650)))
    tag(world, "prod", "worker", encode_tags(forever))
    run = start_agent(world)
    with structlog.testing.capture_logs() as lines:
        run.passes(1)
    assert [p.action for p in run.applied()] == ["rollback_task_definition"]
    [ignored] = [line for line in lines if line["event"] == "state_ignored"]
    assert ignored["tag"] == "ecs-medic:state verifying.deadline"


def test_forged_records_on_an_unmanaged_service_neither_use_the_cap_nor_get_written(world):
    prepare(world, SCENARIOS["crash-loop"])
    world.push_image("decoy", "v1")
    world.add_service("prod", "decoy", image="decoy:v1")  # not managed
    world.advance(60)
    forged = ServiceState(actions={f"action-{i}": ActionRecord(world.now, 1, "applied", "p") for i in range(20)})
    tag(
        world,
        "prod",
        "decoy",
        {**encode_tags(forged), **{f"ecs-medic:action.a{i}": "1/1/applied/p" for i in range(20)}},
    )
    decoy_tags = world.describe_service("prod", "decoy")["tags"]
    run = start_agent(world, max_actions_per_hour=1)
    run.passes(3)
    assert [p.action for p in run.applied()] == ["rollback_task_definition"]  # the real fix was not capped
    assert world.describe_service("prod", "decoy")["tags"] == decoy_tags  # and nothing was written there
    worker = {t["key"] for t in world.describe_service("prod", "worker")["tags"]}
    assert "ecs-medic:state" in worker  # the managed service's state was written


class _Broken(Action[Params]):
    """An action with a bug: planning raises for one service (an unforeseen shape of its data)."""

    name: ClassVar[str] = "broken_for_worker"
    params_model = Params
    permissions: ClassVar[tuple[str, ...]] = ("ecs:UpdateService",)
    dry_run_description: ClassVar[str] = "would fail"

    def plan(self, context: Context, params: Params) -> Plan | None:
        del params
        if context.service.name == "worker":
            raise KeyError("containerDefinitions")
        return None


@pytest.fixture
def broken_action():
    REGISTRY[_Broken.name] = _Broken()
    yield _Broken.name
    del REGISTRY[_Broken.name]


def test_one_service_whose_data_breaks_the_agent_costs_only_that_service(world, tmp_path, broken_action):
    prepare(world, SCENARIOS["crash-loop"])
    SCENARIOS["health-check-cycling"].setup(world)
    tag(world, "prod", "search", {"ecs-medic:managed": "true"})
    policies = policies_where(tmp_path / "policies")
    (policies / "broken.yaml").write_text(
        "apiVersion: ecs-medic/v1\nkind: RemediationPolicy\nmetadata: {name: broken}\n"
        f"spec: {{when: {{cause: [app_crash, health_check_elb]}}, remediation: {{action: {broken_action}}}, "
        "priority: 1000}\n"
    )
    run = start_agent(world, policies=policies)
    report = run.passes(1)
    assert [(e.service, e.operation) for e in report.errors] == [("worker", "decide")]
    assert "KeyError" in report.errors[0].message
    assert report.result == "partial"
    assert [p.action for p in run.applied()] == ["raise_grace_period"]  # search was decided and fixed
    sample = run.metrics.registry.get_sample_value
    assert sample("ecs_medic_service_errors_total", {"cluster": "prod", "service": "worker", "stage": "decide"}) == 1
    assert run.passes(1).errors == report.errors  # tried again next pass, still only that service
