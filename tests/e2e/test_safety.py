"""Safety properties against the world: restarts, throttling, partial failures, pauses, caps."""

from __future__ import annotations

import json
import threading
import urllib.request
from datetime import timedelta

import structlog

from agent.http import Health, StatusServer
from agent.settings import Mode
from agent.sim import SCENARIOS, AppProfile
from agent.state import PAUSED, decode_tags
from tests.e2e.conftest import prepare, start_agent


def update_calls(world) -> int:
    return sum(1 for r in world.requests.mutating() if r.operation == "UpdateService")


def test_a_restart_between_passes_repeats_no_action(world):
    prepare(world, SCENARIOS["crash-loop"])
    first = start_agent(world)
    first.passes(1)
    assert [p.action for p in first.applied()] == ["rollback_task_definition"]
    assert update_calls(world) == 1
    tags = {t["key"]: t["value"] for t in world.describe_service("prod", "worker")["tags"]}
    state, problems = decode_tags(tags, world.now)
    assert problems == ()
    record = state.actions["rollback_task_definition"]
    assert (record.attempts, record.outcome) == (1, "applied")
    assert (state.verifying.change.action, state.verifying.change.policy) == (
        "rollback_task_definition",
        "rollback-bad-deploy",
    )
    assert state.intent is None
    restarted = start_agent(world)  # a new process: nothing in memory, everything from the tags
    restarted.passes(20)
    assert update_calls(world) == 1
    assert restarted.applied() == []
    verdicts = [v for r in restarted.reports for v in r.verifications]
    assert verdicts[0][2:] == ("rollback_task_definition", "verified")


def test_throttling_and_server_errors_are_retried_and_counted(world):
    prepare(world, SCENARIOS["health-check-cycling"])
    world.faults.add(kind="throttle", operation="DescribeServices", rate=0.5)
    world.faults.add(kind="server_error", operation="ListTasks", count=2)
    run = start_agent(world)
    report = run.passes(1)
    assert report.errors == ()
    assert [p.action for p in run.applied()] == ["raise_grace_period"]
    sample = run.metrics.registry.get_sample_value
    throttled = sample(
        "ecs_medic_aws_calls_total", {"service": "ecs", "operation": "DescribeServices", "outcome": "throttled"}
    )
    assert throttled and throttled >= 1
    assert sample("ecs_medic_aws_calls_total", {"service": "ecs", "operation": "ListTasks", "outcome": "error"}) >= 1


def test_one_failing_cluster_never_stops_the_others(world):
    prepare(world, SCENARIOS["crash-loop"])
    world.add_fargate_cluster("quiet")
    world.push_image("api", "v1")
    world.add_service("quiet", "api", image="api:v1")
    world.advance(300)
    # Every DescribeServices fails for good (5 attempts each): the pass reports it and goes on.
    world.faults.add(kind="server_error", operation="DescribeServices", count=5)
    run = start_agent(world)
    report = run.passes(1)
    assert [(e.cluster, e.operation) for e in report.errors] == [("prod", "DescribeServices")]
    assert report.result == "partial"
    assert report.services == 1
    assert run.metrics.registry.get_sample_value("ecs_medic_reconcile_passes_total", {"result": "partial"}) == 1


def test_cluster_pause_tag_stops_enforcement_there(world):
    prepare(world, SCENARIOS["crash-loop"])
    ecs = world.client("ecs")
    cluster = ecs.describe_clusters(clusters=["prod"])["clusters"][0]["clusterArn"]
    ecs.tag_resource(resourceArn=cluster, tags=[{"key": PAUSED, "value": "database migration until 04:00"}])
    world.requests.clear()
    run = start_agent(world)
    report = run.passes(2)
    assert update_calls(world) == 0
    assert report.paused_clusters == {"prod": "database migration until 04:00"}
    [proposal] = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert proposal.reason == "enforcement paused: database migration until 04:00"


def test_the_hourly_cap_holds_across_services(world):
    prepare(world, SCENARIOS["placement-cpu"])
    run = start_agent(world, max_actions_per_hour=1)
    run.passes(1)
    assert [p.action for p in run.applied()] == ["scale_capacity_provider"]
    # The same service fails again later, inside the hour: capped, not applied.
    world.scale("batch", "reports", 12)
    run.passes(30)
    capped = [p for p in run.proposals() if p.outcome.value == "skipped_limit"]
    assert capped and capped[-1].reason == "hourly cap: 1 actions per hour reached"
    assert [p.action for p in run.applied()] == ["scale_capacity_provider"]


def test_unmanaged_services_are_diagnosed_but_never_changed(world):
    scenario = SCENARIOS["crash-loop"]
    scenario.setup(world)  # not opted in: no ecs-medic:managed tag
    world.requests.clear()
    run = start_agent(world)
    report = run.passes(2)
    assert update_calls(world) == 0
    assert any(f.cause.value == "app_crash" for f in report.findings)
    [proposal] = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert proposal.reason == "not managed: the service has no ecs-medic:managed=true tag"


def test_http_endpoints_report_the_agent(world):
    prepare(world, SCENARIOS["oom-exit-137"])
    run = start_agent(world, mode=Mode.DRY_RUN)
    now = [0.0]
    health = Health(
        max_pass_age_seconds=90, clock=lambda: now[0], proposals=lambda: [p.to_dict() for p in run.reconciler.latest]
    )
    server = StatusServer(run.metrics, health, 0, host="127.0.0.1").start()
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:  # noqa: S310 - loopback
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        assert get("/readyz")[0] == 503
        run.passes(1)
        health.pass_finished()
        assert get("/readyz") == (200, "ready\n")
        assert get("/healthz")[0] == 200
        status, body = get("/metrics")
        assert status == 200
        assert 'ecs_medic_reconcile_passes_total{result="ok"} 1.0' in body
        assert "ecs_medic_pending_approvals 1.0" in body
        proposals = json.loads(get("/proposals")[1])["proposals"]
        assert [(p["action"], p["status"]) for p in proposals if p["action"] == "raise_memory"] == [
            ("raise_memory", "awaiting_approval")
        ]
        now[0] += 91
        status, body = get("/healthz")
        assert status == 503
        assert body.startswith("no pass has seen the fleet for 91 s (limit 90 s)")
    finally:
        server.stop()


def test_shutdown_starts_no_new_action(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    stop = threading.Event()
    stop.set()
    report = run.reconciler.run_pass(world.now, stop)
    assert update_calls(world) == 0
    [proposal] = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert (proposal.outcome.value, proposal.reason) == ("proposed", "shutting down: not started")
    tags = {t["key"] for t in world.describe_service("prod", "worker").get("tags", [])}
    assert "ecs-medic:verify" not in tags


def test_cooldown_and_bounds_hold_then_the_next_policy_takes_over(world):
    prepare(world, SCENARIOS["health-check-cycling"])
    # A version that needs fifteen minutes to start: no grace period within the policy's bounds helps.
    world.push_image("search", "v3", AppProfile.slow_start(900))
    world.deploy("prod", "search", image="search:v3")
    world.requests.clear()
    run = start_agent(world, verify_timeout_seconds=300)
    run.passes(240)  # two simulated hours
    raises = [
        (r.finished_at, p.outcome.value) for r in run.reports for p in r.proposals if p.action == "raise_grace_period"
    ]
    applied = [at for at, outcome in raises if outcome == "applied"]
    assert len(applied) == 2  # the policy's maxAttempts
    assert applied[1] - applied[0] >= timedelta(minutes=5)  # the policy's cooldown
    grace = world.describe_service("prod", "search")["healthCheckGracePeriodSeconds"]
    assert grace == 520  # the second raise: twice the 260 s ECS gave the tasks after the first, and no third
    # With its raises spent, the policy's ladder goes on: back to the last good revision.
    actions = [(p.action, p.outcome.value) for p in run.applied()]
    assert actions == [
        ("raise_grace_period", "applied"),
        ("raise_grace_period", "applied"),
        ("rollback_task_definition", "applied"),
    ]
    judged = [(v[2], v[3].value) for r in run.reports for v in r.verifications]
    assert judged == [
        ("raise_grace_period", "not_effective"),
        ("raise_grace_period", "not_effective"),
        ("rollback_task_definition", "verified"),
    ]
    assert world.service_state("prod", "search").task_definition.endswith("search:1")


def test_every_log_line_about_a_service_carries_the_same_keys(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    with structlog.testing.capture_logs() as lines:
        run.passes(6)
    about_services = [line for line in lines if "service" in line and line["event"] != "observe_failed"]
    assert {line["event"] for line in about_services} >= {"finding", "remediation", "remediation_judged"}
    for line in about_services:
        assert {"cluster", "service", "cause", "action", "mode", "outcome"} <= set(line), line
    [applied] = [
        line
        for line in about_services
        if line["event"] == "remediation" and line["outcome"] == "applied" and line["action"] != "notify"
    ]
    assert (applied["cluster"], applied["service"], applied["cause"], applied["mode"]) == (
        "prod",
        "worker",
        "app_crash",
        "enforce",
    )
    assert {line["event"] for line in lines if "service" not in line} >= {"reconcile_pass"}
