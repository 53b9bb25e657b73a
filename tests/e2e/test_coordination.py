"""Event-driven wake-ups (EventBridge -> SQS) and leader election (a DynamoDB lease), against the world."""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog

from agent.lease import Lease
from agent.settings import Mode
from agent.sim import SCENARIOS
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
