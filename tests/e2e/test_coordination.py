"""Event-driven wake-ups (EventBridge -> SQS) and leader election (a DynamoDB lease), against the world."""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog

from agent.lease import Lease
from agent.settings import Mode
from agent.sim import SCENARIOS
from agent.state import decode_tags
from agent.wake import QueueWake
from tests.e2e.conftest import prepare, start_agent


def test_an_ecs_event_wakes_the_loop_and_is_consumed_when_enforcing(world):
    url = world.configure_events_queue()
    prepare(world, SCENARIOS["healthy"])
    run = start_agent(world)
    wake = QueueWake(run.reconciler.aws, url, delete=True, log=structlog.get_logger())
    world.deploy("prod", "web", image="web:v1")  # a deployment: ECS publishes task and deployment events
    world.advance(60)
    assert wake(5, threading.Event()) is True
    world.requests.clear()
    while wake(1, threading.Event()):  # drain what the deployment published
        pass
    assert "DeleteMessageBatch" in {r.operation for r in world.requests.mutating()}
    assert wake(1, threading.Event()) is False


def test_in_dry_run_the_queue_is_read_but_never_written(world):
    url = world.configure_events_queue()
    prepare(world, SCENARIOS["healthy"])
    run = start_agent(world, mode=Mode.DRY_RUN)
    wake = QueueWake(run.reconciler.aws, url, delete=False, log=structlog.get_logger())
    world.deploy("prod", "web", image="web:v1")
    world.advance(60)
    world.requests.clear()
    assert wake(5, threading.Event()) is True
    assert world.requests.mutating() == []


def test_a_stop_request_ends_the_wait_at_once(world):
    url = world.configure_events_queue()
    run = start_agent(world)
    stop = threading.Event()
    stop.set()
    assert QueueWake(run.reconciler.aws, url, delete=True, log=structlog.get_logger())(30, stop) is False


def test_only_one_replica_holds_the_lease_until_it_expires(world):
    dynamodb = world.client("dynamodb")
    dynamodb.create_table(
        TableName="ecs-medic-lease",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    clock = [world.now]
    log = structlog.get_logger()
    gateway = start_agent(world).reconciler.aws
    first = Lease(gateway, "ecs-medic-lease", 90, lambda: clock[0], log, holder="replica-a")
    second = Lease(gateway, "ecs-medic-lease", 90, lambda: clock[0], log, holder="replica-b")
    assert first.renew() is True
    assert second.renew() is False
    clock[0] += timedelta(seconds=60)
    assert first.renew() is True  # renewing pushes the expiry forward
    clock[0] += timedelta(seconds=60)
    assert second.renew() is False
    clock[0] += timedelta(seconds=91)  # the holder stopped renewing
    assert second.renew() is True
    assert first.renew() is False
    second.release()
    assert first.renew() is True


def test_a_replica_without_the_lease_proposes_but_never_acts(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    run.reconciler.leader = lambda: False
    report = run.passes(2)
    assert "UpdateService" not in {r.operation for r in world.requests.mutating()}
    assert {p.outcome.value for p in report.proposals} <= {"proposed", "awaiting_approval"}
    assert run.metrics.registry.get_sample_value("ecs_medic_is_leader") == 0


def _lease_table(world) -> str:
    world.client("dynamodb").create_table(
        TableName="ecs-medic-lease",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "ecs-medic-lease"


class Replica:
    """One agent process with its lease, on clocks the test moves: the world's for time of day, its own
    monotonic clock for how long it believes it still holds the lease."""

    def __init__(self, world, table: str, holder: str) -> None:
        self.world = world
        self.run = start_agent(world)
        self.monotonic = [0.0]
        self.lease = Lease(
            self.run.reconciler.aws,
            table,
            90,
            lambda: world.now,
            structlog.get_logger(),
            holder=holder,
            monotonic=lambda: self.monotonic[0],
        )
        reconciler = self.run.reconciler
        reconciler.leader = lambda: self.lease.held
        reconciler.guard = self.lease.guard
        reconciler.fence = lambda: self.lease.version
        reconciler.holder = holder

    def pass_(self):
        return self.run.reconciler.run_pass(self.world.now)


def _carried_out(world, operation: str) -> int:
    return sum(1 for r in world.requests.all() if r.operation == operation and 200 <= r.status < 300)


def test_a_stalled_leader_never_lands_a_change_after_the_lease_moved_on(world):
    table = _lease_table(world)
    prepare(world, SCENARIOS["crash-loop"])
    a, b = Replica(world, table, "replica-a"), Replica(world, table, "replica-b")
    assert (a.lease.renew(), b.lease.renew()) == (True, False)
    assert a.lease.version == 1
    world.advance(30)  # A's change starts 30 s into its lease: its deadline outlives the lease
    world.faults.add(operation="UpdateService", kind="hang", count=1)
    stalled = threading.Thread(target=a.pass_, daemon=True)
    stalled.start()
    assert world.faults.hanging.wait(30)  # A's UpdateService was carried out; its answer is held
    # A stalls past its lease: by its own clock it no longer holds it; by the world's, it expired.
    a.monotonic[0] += 90
    world.advance(95)
    assert b.lease.renew() is True
    assert b.lease.version == 2
    b.pass_()  # A's change may still be in flight: B leaves it alone until its deadline
    assert b.run.reconciler.aws.counts.get(("ecs", "UpdateService", "ok")) is None
    world.advance(30)
    b.pass_()  # past the deadline: B reads what happened and records it
    assert _carried_out(world, "UpdateService") == 1
    world.faults.release()  # A wakes up: its answer is lost; nothing more of it may land
    stalled.join(30)
    assert not stalled.is_alive()
    assert _carried_out(world, "UpdateService") == 1
    tags = {t["key"]: t["value"] for t in world.describe_service("prod", "worker")["tags"]}
    state, _ = decode_tags(tags, world.now)
    assert state.intent is None
    assert state.bad_revisions == ("worker:2",)
    assert state.verifying is not None and state.verifying.change.action == "rollback_task_definition"
    assert state.verifying.outputs == {}


def test_a_leader_whose_lease_ran_out_mid_change_sends_nothing_more(world):
    table = _lease_table(world)
    prepare(world, SCENARIOS["crash-loop"])
    a = Replica(world, table, "replica-a")
    assert a.lease.renew() is True
    # The first UpdateService fails with a 500 (not carried out, but A cannot know): before sending it
    # again A checks the lease, which by then it has lost.
    world.faults.add(operation="UpdateService", kind="server_error", count=1)
    calls = {"n": 0}
    original = a.run.reconciler.aws.call

    def call_and_stall(api, operation, params, **options):
        if operation == "UpdateService":
            calls["n"] += 1
            if calls["n"] == 2:
                a.monotonic[0] += 90  # the stall: A's lease runs out between its two sends
        return original(api, operation, params, **options)

    a.run.reconciler.aws.call = call_and_stall
    report = a.pass_()
    [proposal] = [p for p in report.proposals if p.action == "rollback_task_definition"]
    assert proposal.outcome.value == "failed"
    assert proposal.reason.startswith("leadership lost mid-change")
    assert _carried_out(world, "UpdateService") == 0
    assert world.service_state("prod", "worker").task_definition.endswith("worker:2")


def test_a_standby_that_takes_over_keeps_the_old_leaders_memory(world):
    table = _lease_table(world)
    prepare(world, SCENARIOS["crash-loop"])
    a, b = Replica(world, table, "replica-a"), Replica(world, table, "replica-b")
    assert (a.lease.renew(), b.lease.renew()) == (True, False)
    a.pass_()  # A rolls back: an episode, a known-bad revision, a cooldown and a verification
    assert _carried_out(world, "UpdateService") == 1
    for _ in range(2):
        standby = b.pass_()
        assert all(p.reason == "standby: another replica holds the lease" for p in standby.proposals if p.plan.mutates)
        world.advance(30)
    before = {t["key"]: t["value"] for t in world.describe_service("prod", "worker")["tags"]}
    # A dies; its lease expires; B takes over and works from what A recorded, not from its own view.
    world.advance(95)
    assert b.lease.renew() is True
    for _ in range(6):
        b.pass_()
        world.advance(30)
    assert _carried_out(world, "UpdateService") == 1
    after = {t["key"]: t["value"] for t in world.describe_service("prod", "worker")["tags"]}
    old, _ = decode_tags(before, world.now)
    new, _ = decode_tags(after, world.now)
    assert new.bad_revisions == old.bad_revisions == ("worker:2",)
    assert new.actions["rollback_task_definition"].last_at == old.actions["rollback_task_definition"].last_at
    assert new.verifying is None  # B judged A's change ...
    assert new.actions["rollback_task_definition"].outcome == "verified"  # ... and found it worked
