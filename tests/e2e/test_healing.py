"""Closing the loop against the simulated world: fixes sized from evidence, judged by what ECS reports
after them, tried again larger, undone, or escalated along the policy's ladder.

Unless a test says otherwise, the agent runs with the bundled policies, every cooldown one minute
(short enough for an episode to move on at the pass after a verdict), one pass every 30 simulated
seconds, and an operator who approves what waits for approval at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from agent.decide import Kind, Outcome, Proposal
from agent.demo import manage
from agent.settings import Mode
from agent.sim import SCENARIOS, AppProfile, HealthCheck, World
from tests.e2e.conftest import PREVENTION, Run, approve_waiting, prepare, start_agent

COOLDOWN = 60.0
INTERVAL = 30.0

# What the agent changes, in order (remediations applied, and changes undone), and its verdicts.
LADDERS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = {
    "health-check-slow-warmup": (
        (("raise_grace_period", "applied"), ("raise_grace_period", "applied")),
        (("raise_grace_period", "not_effective"), ("raise_grace_period", "verified")),
    ),
    "health-check-hang": (
        (("raise_grace_period", "applied"), ("raise_grace_period", "applied"), ("rollback_task_definition", "applied")),
        (
            ("raise_grace_period", "not_effective"),
            ("raise_grace_period", "not_effective"),
            ("rollback_task_definition", "verified"),
        ),
    ),
    "placement-several-instances": (
        (("scale_capacity_provider", "applied"),),
        (("scale_capacity_provider", "verified"),),
    ),
    "oom-large-model": (
        (("raise_memory", "applied"), ("raise_memory", "applied")),
        (("raise_memory", "not_effective"), ("raise_memory", "verified")),
    ),
    "oom-memory-leak": (
        (("raise_memory", "applied"), ("rollback_task_definition", "applied")),
        (("raise_memory", "not_effective"), ("rollback_task_definition", "verified")),
    ),
    "oom-after-right-sizing": (
        (("raise_memory", "applied"),),
        (("raise_memory", "verified"),),
    ),
}

# Every scenario the agent fixes by itself (the others need a person, or are healthy or a storm).
FIXABLE = sorted(
    {
        "image-tag-missing",
        "oom-exit-137",
        "crash-loop",
        "bad-entrypoint",
        "placement-cpu",
        "placement-memory",
        "health-check-cycling",
        "deployment-no-circuit-breaker",
        *LADDERS,
    }
)
# Minutes from the agent's first pass to steady state. Raising a grace period is judged only once
# the tasks started after it had that long: each raise costs at least the period it sets.
WITHIN_MINUTES = {"health-check-slow-warmup": 11, "health-check-hang": 17}
DEFAULT_WITHIN_MINUTES = 6
# The one scenario whose fix is the third step of its ladder: two raises must fail before the rollback.
LADDER_OF_THREE = "health-check-hang"

# The reading that decided each remediation's size, in order (`decidedBy` starts with it).
DECIDED_BY = {
    "health-check-cycling": ("lifetime: the tasks lived 128 s",),
    "health-check-slow-warmup": ("lifetime: the tasks lived 128 s", "time given: ECS stopped them after 260 s"),
    "health-check-hang": ("lifetime: the tasks lived 128 s", "time given: ECS stopped them after 260 s", ""),
    "placement-several-instances": (
        (
            "12 task(s) cannot be placed; each needs 1024 CPU units and 2048 MiB, an instance registers 4096 CPU "
            "units and 8192 MiB (4 task(s)); free capacity holds 0: 3 more instance(s)"
        ),
    ),
    "placement-cpu": ("2 task(s) cannot be placed",),
    # The second raise starts from the first (it replaces it): its limit and the OOM kills agree.
    "oom-large-model": ("the limit of 512 MiB: 2 x that", "the limit of 1024 MiB: 2 x that"),
    "oom-memory-leak": ("the limit of 4096 MiB: 2 x that", ""),
    "oom-after-right-sizing": ("Container Insights' peak MemoryUtilized is 1100 MiB: 1.25 x that",),
}


@dataclass
class Healing:
    run: Run
    seconds: float  # from the agent's first pass to the steady state that lasted

    def changes(self) -> list[Proposal]:
        """Remediations applied and changes undone (prevention advice excluded)."""
        return [
            p
            for p in self.run.proposals()
            if p.outcome in (Outcome.APPLIED, Outcome.REVERTED) and p.cause not in PREVENTION
        ]

    def remediations(self) -> list[Proposal]:
        return [p for p in self.changes() if p.kind is Kind.REMEDIATION and p.plan.mutates]

    def verdicts(self) -> list[tuple[str, str]]:
        return [(v[2], v[3].value) for report in self.run.reports for v in report.verifications]


def opt_in(world: World, cluster: str, service: str) -> None:
    arn = world.describe_service(cluster, service)["serviceArn"]
    world.client("ecs").tag_resource(resourceArn=arn, tags=[{"key": "ecs-medic:managed", "value": "true"}])


def steady(world: World, name: str) -> bool:
    scenario = SCENARIOS[name]
    return all(world.service_state(scenario.cluster, service).steady for service in scenario.services)


def heal(run: Run, name: str, *, minutes: float = 30) -> Healing:
    """Passes (and approvals) until the scenario's services are steady, the last verdict is `verified`
    and they stayed steady for two passes; fails after `minutes`."""
    healed_at = None
    for index in range(int(minutes * 60 / INTERVAL)):
        run.passes(1, every=INTERVAL)
        approve_waiting(run)
        if not steady(run.world, name):
            healed_at = None
            continue
        healed_at = index * INTERVAL if healed_at is None else healed_at
        verdicts = [v for report in run.reports for v in report.verifications]
        if verdicts and verdicts[-1][3] is Outcome.VERIFIED and index * INTERVAL - healed_at >= 2 * INTERVAL:
            return Healing(run, healed_at)
    pytest.fail(f"{name} did not heal: {[(p.action, p.outcome.value, p.reason) for p in run.proposals()]}")


@pytest.mark.parametrize("name", FIXABLE)
def test_every_fixable_scenario_heals_within_minutes_with_at_most_two_remediations(world, name):
    """Remediations are the changes the policies make; a change undone because it did not help is
    counted apart (`LADDERS` lists both). Only `health-check-hang` needs a third remediation: the
    rollback its ladder reaches once two raises have failed, by design."""
    prepare(world, SCENARIOS[name])
    healing = heal(start_agent(world, cooldown=COOLDOWN), name)
    assert healing.seconds <= WITHIN_MINUTES.get(name, DEFAULT_WITHIN_MINUTES) * 60
    remediations = healing.remediations()
    assert len(remediations) <= (3 if name == LADDER_OF_THREE else 2), [p.plan.summary for p in remediations]
    if name in LADDERS:
        changes, verdicts = LADDERS[name]
        assert tuple((p.action, p.outcome.value) for p in healing.changes()) == changes
        assert tuple(healing.verdicts()) == verdicts
    if name in DECIDED_BY:
        assert len(remediations) == len(DECIDED_BY[name])
        for proposal, expected in zip(remediations, DECIDED_BY[name], strict=True):
            assert proposal.plan.decided_by.startswith(expected), proposal.plan.decided_by
            assert proposal.to_dict()["decidedBy"] == proposal.plan.decided_by


@pytest.mark.parametrize("name", ["placement-cpu", "placement-memory", "placement-several-instances"])
def test_a_visible_capacity_need_is_met_with_one_change(world, name):
    scenario = SCENARIOS[name]
    prepare(world, scenario)
    heal(start_agent(world, cooldown=COOLDOWN), name)
    resizes = [r for r in world.requests.mutating() if r.operation == "UpdateAutoScalingGroup"]
    assert len(resizes) == 1
    group = world.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[f"{scenario.cluster}-asg"])
    [described] = group["AutoScalingGroups"]
    expected = 5 if name == "placement-several-instances" else 3
    assert (described["DesiredCapacity"], described["MaxSize"]) == (expected, expected)


def test_with_managed_scaling_the_maximum_is_raised_to_what_the_tasks_need(world):
    world.add_ec2_cluster("etl", instances=2, instance_cpu=4096, instance_memory=8192, max_size=2, managed_scaling=True)
    world.push_image("ingest", "v1")
    world.add_service("etl", "ingest", image="ingest:v1", desired_count=8, cpu=1024, memory=2048, load_balanced=False)
    world.advance(300)
    world.scale("etl", "ingest", 20)
    world.advance(120)
    opt_in(world, "etl", "ingest")
    run = start_agent(world, cooldown=COOLDOWN)
    for _ in range(20):
        run.passes(1)
        if world.service_state("etl", "ingest").steady and run.reports[-1].verdicts:
            break
    [proposal] = [p for p in run.applied() if p.action == "scale_capacity_provider"]
    assert [(c.field, c.current, c.desired) for c in proposal.plan.changes] == [
        ("autoScalingGroups[etl-asg].MaxSize", 2, 5)
    ]  # the desired size is managed scaling's to set
    assert proposal.plan.summary == "raise etl-asg's maximum from 2 to 5 (managed scaling adds the instances)"
    assert world.service_state("etl", "ingest").steady
    group = world.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["etl-asg"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 5  # set by managed scaling, not the agent
    assert [r.operation for r in world.requests.mutating() if r.operation == "UpdateAutoScalingGroup"] == [
        "UpdateAutoScalingGroup"
    ]


def test_without_instance_data_the_policy_step_sizes_the_change(world):
    prepare(world, SCENARIOS["placement-several-instances"])
    world.faults.add(kind="server_error", operation="DescribeContainerInstances", count=100)
    run = start_agent(world, Mode.DRY_RUN)
    report = run.passes(1)
    assert [(e.cluster, e.operation) for e in report.errors] == [("etl", "DescribeContainerInstances")]
    [proposal] = [p for p in report.proposals if p.action == "scale_capacity_provider"]
    assert [(c.field, c.current, c.desired) for c in proposal.plan.changes] == [
        ("autoScalingGroups[etl-asg].DesiredCapacity", 2, 3),
        ("autoScalingGroups[etl-asg].MaxSize", 2, 3),
    ]
    assert proposal.plan.decided_by == "no evidence of what the tasks need: 1 instance(s), the policy's step"


def test_a_task_no_instance_can_hold_is_escalated_not_scaled(world):
    world.add_ec2_cluster("etl", instances=2, instance_cpu=2048, instance_memory=4096, max_size=2)
    world.push_image("ingest", "v1")
    world.add_service("etl", "ingest", image="ingest:v1", desired_count=2, cpu=512, memory=1024, load_balanced=False)
    world.advance(300)
    world.deploy("etl", "ingest", cpu=4096, memory=2048)  # more CPU than an instance registers
    world.advance(300)
    opt_in(world, "etl", "ingest")
    run = start_agent(world, cooldown=COOLDOWN)
    run.passes(3)
    mine = [p for p in run.proposals() if p.policy == "scale-capacity-on-placement-failure"]
    assert mine and {p.action for p in mine} == {"notify"}, [(p.action, p.plan.summary) for p in mine]
    assert "UpdateAutoScalingGroup" not in {r.operation for r in world.requests.mutating()}
    assert any(step.endswith("-> notify") for report in run.reports for *_, step in report.escalations)


def test_the_last_good_revisions_start_sizes_the_first_raise_when_no_task_has_stopped_yet(world):
    SCENARIOS["health-check-slow-warmup"].build(world)  # the agent watches from the deploy on
    run = start_agent(world, Mode.DRY_RUN)
    for _ in range(10):
        run.passes(1)
        raises = [p for p in run.proposals() if p.action == "raise_grace_period"]
        if raises:
            break
    [change] = raises[0].plan.changes
    assert (change.current, change.desired) == (0, 230)
    assert raises[0].plan.decided_by.startswith("last good revision: catalog:1 took 115 s to become healthy, x 2")


def test_slow_health_checks_size_the_raise(world):
    # A new service: one check a minute, five in a row to turn healthy, five minutes after the app answers.
    world.add_fargate_cluster("prod")
    world.push_image("search", "v1", AppProfile.slow_start(150))  # unhealthy after 2 failed checks, at 120 s
    checks = HealthCheck(interval_seconds=60, healthy_threshold=5, unhealthy_threshold=2)
    world.add_service("prod", "search", image="search:v1", grace_period=0, health_check=checks)
    world.advance(900)
    opt_in(world, "prod", "search")
    run = start_agent(world, Mode.DRY_RUN)
    [proposal] = [p for p in run.passes(1).proposals if p.action == "raise_grace_period"]
    assert proposal.plan.decided_by.startswith(
        "lifetime + checks: the tasks lived 160 s + 5 passing checks 60 s apart (300 s) = 460 s"
    )
    [change] = proposal.plan.changes
    assert change.desired == 460


def test_the_container_health_checks_start_period_sizes_the_raise(world):
    prepare(world, SCENARIOS["health-check-cycling"])
    ecs = world.client("ecs")
    current = world.describe_service("prod", "search")["taskDefinition"]
    definition = ecs.describe_task_definition(taskDefinition=current)["taskDefinition"]
    check = {"command": ["CMD-SHELL", "curl -f localhost:8080/health"], "startPeriod": 240, "interval": 30}
    containers = [dict(c, healthCheck=check) for c in definition["containerDefinitions"]]
    keep = ("family", "networkMode", "requiresCompatibilities", "executionRoleArn", "cpu", "memory")
    revision = ecs.register_task_definition(
        **{k: definition[k] for k in keep if definition.get(k)}, containerDefinitions=containers
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="prod", service="search", taskDefinition=revision)
    world.advance(600)
    run = start_agent(world, Mode.DRY_RUN)
    [proposal] = [p for p in run.passes(1).proposals if p.action == "raise_grace_period"]
    [change] = proposal.plan.changes
    assert change.desired == 330  # 240 s to start, then 3 passing checks 30 s apart
    assert proposal.plan.decided_by.startswith("startPeriod: the container health check's startPeriod is 240 s")


def test_without_container_insights_the_same_oom_takes_two_raises(world):
    scenario = SCENARIOS["oom-after-right-sizing"]
    prepare(world, scenario)
    world.client("ecs").update_cluster(cluster="prod", settings=[{"name": "containerInsights", "value": "disabled"}])
    run = start_agent(world, cooldown=COOLDOWN)
    healing = heal(run, scenario.name)
    # The second raise replaces the first (no undo in between): two changes.
    assert [(p.action, p.outcome.value) for p in healing.changes()] == [
        ("raise_memory", "applied"),
        ("raise_memory", "applied"),
    ]
    first, second = healing.remediations()
    assert first.plan.decided_by.startswith("the limit of 512 MiB: 2 x that")
    assert second.plan.decided_by.startswith("the limit of 1024 MiB: 2 x that")
    assert "tasks of pricing:3 were OOM-killed at 1024 MiB" in second.plan.decided_by
    assert run.reconciler.aws.counts.get(("cloudwatch", "GetMetricData", "ok")) is None  # only when it is on


def test_an_undone_change_is_never_returned_to(world):
    prepare(world, SCENARIOS["oom-memory-leak"])
    run = start_agent(world, cooldown=COOLDOWN)
    heal(run, "oom-memory-leak")
    # The rollback replaces the raise that did not help, and deregisters its revision: no undo first.
    rollback = next(
        p for p in run.proposals() if p.action == "rollback_task_definition" and p.outcome is Outcome.APPLIED
    )
    assert rollback.plan.summary.endswith("; orders:3, whose memory was not enough, is deregistered")
    assert not [p for p in run.proposals() if p.outcome is Outcome.REVERTED]
    definition = world.client("ecs").describe_task_definition(taskDefinition="orders:3")["taskDefinition"]
    assert definition["status"] == "INACTIVE"
    assert world.service_state("prod", "orders").task_definition.endswith("orders:1")


def test_a_cooldown_longer_than_the_verdict_holds_the_next_attempt(world):
    prepare(world, SCENARIOS["health-check-slow-warmup"])
    run = start_agent(world, cooldown=600.0)
    heal(run, "health-check-slow-warmup", minutes=40)
    raises = [(r.finished_at, p.outcome) for r in run.reports for p in r.proposals if p.action == "raise_grace_period"]
    applied = [at for at, outcome in raises if outcome is Outcome.APPLIED]
    assert len(applied) == 2
    assert applied[1] - applied[0] >= timedelta(minutes=10)
    assert Outcome.SKIPPED_COOLDOWN in {outcome for _, outcome in raises}


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_dry_run_makes_no_mutating_call(world, name):
    scenario = SCENARIOS[name]
    prepare(world, scenario)
    before = world.fingerprint()
    run = start_agent(world, Mode.DRY_RUN, cooldown=COOLDOWN)
    run.passes(6)
    assert world.requests.mutating() == []
    assert not before.diff(world.fingerprint())
    failing = [p for p in run.proposals() if p.cause not in PREVENTION]
    assert failing and {p.outcome for p in failing} <= {Outcome.PROPOSED, Outcome.AWAITING_APPROVAL}
    assert failing[0].action == LADDERS[name][0][0][0]
    assert failing[0].plan.decided_by


def test_healthy_services_are_never_touched_and_cost_no_sizing_reads(world):
    failing = SCENARIOS["placement-several-instances"]
    prepare(world, SCENARIOS["healthy"])
    failing.setup(world)
    manage(world, [failing])
    before = world.describe_service("prod", "web")
    run = start_agent(world, cooldown=COOLDOWN)
    heal(run, failing.name)
    assert [p for p in run.proposals() if p.service == "web" and p.cause not in PREVENTION] == []
    after = world.describe_service("prod", "web")
    for key in ("taskDefinition", "desiredCount", "healthCheckGracePeriodSeconds", "deploymentConfiguration"):
        assert after.get(key) == before.get(key), key
    # The agent's own memory (the last good revision) is the one thing it may write on a healthy service.
    added = {t["key"] for t in after["tags"]} - {t["key"] for t in before["tags"]}
    assert all(key.startswith("ecs-medic:state") for key in added), added
    assert [t for t in before["tags"] if t not in after["tags"]] == []
    assert [d["id"] for d in after["deployments"]] == [d["id"] for d in before["deployments"]]
    counts = run.reconciler.aws.counts
    assert counts.get(("elbv2", "DescribeTargetGroups", "ok")) is None  # web is load-balanced but healthy
    assert counts.get(("cloudwatch", "GetMetricData", "ok")) is None
