"""ECS's EventBridge events reach an SQS queue through a rule, shaped as AWS sends them."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from agent.sim import World
from agent.sim.eventbridge import DeliveryProfile
from tests.sim.times import START


def _drain(world: World) -> list[dict[str, Any]]:
    sqs = world.client("sqs")
    assert world.events_queue_url is not None
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=world.events_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return messages
        messages += [json.loads(m["Body"]) for m in batch]
        for message in batch:
            sqs.delete_message(QueueUrl=world.events_queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_task_service_and_deployment_events_reach_the_queue(world: World) -> None:
    world.configure_events_queue()
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", circuit_breaker=(True, True))
    world.advance(300)
    world.deploy("prod", "web", image="web:v2")  # never pushed: the breaker rolls back
    world.advance(900)

    events = _drain(world)
    assert {e["source"] for e in events} == {"aws.ecs"}
    assert {e["detail-type"] for e in events} == {
        "ECS Task State Change",
        "ECS Service Action",
        "ECS Deployment State Change",
    }
    for event in events:
        assert set(event) >= {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }
        assert event["account"] == "123456789012" and event["region"] == "us-east-1"

    tasks = [e for e in events if e["detail-type"] == "ECS Task State Change"]
    stopped = next(e["detail"] for e in tasks if e["detail"].get("stopCode") == "TaskFailedToStart")
    assert stopped["lastStatus"] == "STOPPED" and stopped["desiredStatus"] == "STOPPED"
    assert stopped["group"] == "service:web" and stopped["startedBy"].startswith("ecs-svc/")
    assert stopped["stoppedReason"].startswith("CannotPullContainerError:")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", stopped["stoppedAt"])
    assert stopped["containers"][0]["reason"] == stopped["stoppedReason"]
    versions = [e["detail"]["version"] for e in tasks if e["detail"]["taskArn"] == tasks[0]["detail"]["taskArn"]]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)

    deployments = [e["detail"] for e in events if e["detail-type"] == "ECS Deployment State Change"]
    names = [d["eventName"] for d in deployments]
    assert names.count("SERVICE_DEPLOYMENT_FAILED") == 1
    failed = next(d for d in deployments if d["eventName"] == "SERVICE_DEPLOYMENT_FAILED")
    assert failed == {
        "eventType": "ERROR",
        "eventName": "SERVICE_DEPLOYMENT_FAILED",
        "deploymentId": failed["deploymentId"],
        "updatedAt": failed["updatedAt"],
        "reason": "ECS deployment circuit breaker: task failed to start.",
    }
    assert any(
        d["reason"].startswith("ECS deployment circuit breaker: rolling back to deploymentId") for d in deployments
    )
    assert "SERVICE_DEPLOYMENT_COMPLETED" in names

    actions = {e["detail"]["eventName"] for e in events if e["detail-type"] == "ECS Service Action"}
    assert {"SERVICE_STEADY_STATE", "SERVICE_TASK_START_IMPAIRED"} <= actions


def test_placement_failures_are_service_actions(world: World) -> None:
    world.configure_events_queue()
    world.add_ec2_cluster("batch", instances=1, instance_cpu=1024, instance_memory=2048)
    world.push_image("jobs", "v1")
    world.add_service("batch", "jobs", image="jobs:v1", desired_count=2, cpu=1024, memory=512, load_balanced=False)
    world.advance(60)
    failure = next(
        e
        for e in _drain(world)
        if e["detail-type"] == "ECS Service Action" and e["detail"]["eventName"] == "SERVICE_TASK_PLACEMENT_FAILURE"
    )
    detail = failure["detail"]
    assert detail["eventType"] == "ERROR"
    assert detail["reason"] == "RESOURCE:CPU"
    assert re.match(
        r"^arn:aws:ecs:us-east-1:123456789012:container-instance/batch/[0-9a-f]{32}$",
        detail["containerInstanceArns"][0],
    )
    assert failure["resources"] == ["arn:aws:ecs:us-east-1:123456789012:service/batch/jobs"]


def test_no_queue_no_events(web: World) -> None:
    assert web.events_queue_url is None
    assert web.client("sqs").list_queues().get("QueueUrls", []) == []


def _churn(world: World) -> list[dict[str, Any]]:
    """Ten services of which three fail to start: many task state changes, collected from the queue."""
    world.configure_events_queue()
    world.add_fargate_cluster("prod")
    world.push_image("app", "v1")
    for index in range(10):
        image = "app:v1" if index >= 3 else "app:missing"
        world.add_service("prod", f"svc-{index}", image=image, desired_count=2, load_balanced=False)
    world.advance(300)
    events = _drain(world)
    world.advance(120)  # whatever was still on its way
    return events + _drain(world)


def test_realistic_delivery_is_late_duplicated_and_out_of_order(world: World):
    delivery = world.event_delivery(
        DeliveryProfile(min_delay=0.0, max_delay=12.0, late_rate=0.1, late_delay=40.0, duplicate_rate=0.2)
    )
    events = _churn(world)
    ids = Counter(e["id"] for e in events)
    assert delivery.duplicated > 0
    assert sum(count - 1 for count in ids.values()) == delivery.duplicated, "a duplicate keeps the event's id"
    assert len(ids) == delivery.sent, "every event arrives at least once"
    assert any(v != sorted(v) for v in _task_versions(events).values()), "some task's changes arrive out of order"
    assert delivery.in_flight == 0


def test_delivery_is_reproducible_from_the_seed():
    def run() -> list[tuple[str, str]]:
        with World.start(seed=11, start_time=START) as world:
            world.event_delivery(DeliveryProfile.realistic())
            return [(e["id"], e["detail-type"]) for e in _churn(world)]

    first, second = run(), run()
    assert first == second
    assert len(first) > 50


def test_immediate_delivery_keeps_order_and_sends_each_event_once(world: World):
    events = _churn(world)
    assert len({e["id"] for e in events}) == len(events)
    for versions in _task_versions(events).values():
        assert versions == sorted(versions)


def _task_versions(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    versions: dict[str, list[int]] = {}
    for event in events:
        if event["detail-type"] == "ECS Task State Change":
            versions.setdefault(event["detail"]["taskArn"], []).append(event["detail"]["version"])
    return versions


def test_delivery_profiles_reject_nonsense():
    with pytest.raises(ValueError, match="min <= max"):
        DeliveryProfile(min_delay=5, max_delay=1)
    with pytest.raises(ValueError, match="probability"):
        DeliveryProfile(duplicate_rate=1.5)
