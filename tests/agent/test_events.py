"""Event intake on EventBridge envelopes shaped as AWS documents them: typed records, keys to reconcile,
duplicates and stale versions ignored, messages deleted only after their key was handled."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.arns import ServiceKey
from agent.diagnose import diagnose_task
from agent.events import (
    DeploymentStateChange,
    EventIntake,
    Ignored,
    MalformedEventError,
    ServiceAction,
    TaskStateChange,
    diagnose_stopped_task,
    parse_event,
)
from agent.model import Cause

ACCOUNT = "111122223333"
CLUSTER_ARN = f"arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/default"
SERVICE_ARN = f"arn:aws:ecs:us-west-2:{ACCOUNT}:service/default/servicetest"
KEY = ServiceKey(ACCOUNT, "us-west-2", "default", "servicetest")


def deployment_event(event_id: str = "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE", **detail: Any) -> dict[str, Any]:
    """The developer guide's example of a deployment in progress."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2020-05-23T12:31:14Z",
        "region": "us-west-2",
        "resources": [SERVICE_ARN],
        "detail": {
            "eventType": "INFO",
            "eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2020-05-23T11:11:11Z",
            "reason": "ECS deployment ecs-svc/123 in progress.",
            **detail,
        },
    }


def service_action(event_id: str, name: str = "SERVICE_TASK_PLACEMENT_FAILURE") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "ECS Service Action",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2020-11-04T18:29:44Z",
        "region": "us-west-2",
        "resources": [SERVICE_ARN],
        "detail": {
            "eventType": "ERROR",
            "eventName": name,
            "clusterArn": CLUSTER_ARN,
            "reason": "RESOURCE:MEMORY",
            "createdAt": "2020-11-04T18:29:44.096Z",
        },
    }


def task_event(event_id: str, version: int, *, last_status: str = "STOPPED", task: str = "abc") -> dict[str, Any]:
    """An OOM-killed task, as the Task State Change event carries it (DescribeTasks' shape, ISO times)."""
    task_arn = f"arn:aws:ecs:us-west-2:{ACCOUNT}:task/default/{task}"
    detail: dict[str, Any] = {
        "clusterArn": CLUSTER_ARN,
        "containers": [
            {
                "containerArn": f"arn:aws:ecs:us-west-2:{ACCOUNT}:container/default/{task}/1",
                "lastStatus": last_status,
                "name": "app",
                "image": f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/app:v3",
                "taskArn": task_arn,
                "cpu": "0",
            }
        ],
        "createdAt": "2020-11-04T18:20:00.000Z",
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "group": "service:servicetest",
        "lastStatus": last_status,
        "launchType": "FARGATE",
        "startedBy": "ecs-svc/123",
        "taskArn": task_arn,
        "taskDefinitionArn": f"arn:aws:ecs:us-west-2:{ACCOUNT}:task-definition/app:3",
        "updatedAt": "2020-11-04T18:29:44.096Z",
        "version": version,
    }
    if last_status == "STOPPED":
        detail["containers"][0].update(
            {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}
        )
        detail.update(
            {
                "startedAt": "2020-11-04T18:20:30.000Z",
                "stoppedAt": "2020-11-04T18:29:44.000Z",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
            }
        )
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2020-11-04T18:29:44Z",
        "region": "us-west-2",
        "resources": [task_arn],
        "detail": detail,
    }


def message(envelope: dict[str, Any], receipt: str) -> dict[str, Any]:
    return {"MessageId": f"m-{receipt}", "ReceiptHandle": receipt, "Body": json.dumps(envelope)}


def test_a_deployment_event_names_its_service():
    event = parse_event(deployment_event())
    assert isinstance(event, DeploymentStateChange)
    assert event.key == KEY
    assert event.key.arn == SERVICE_ARN
    assert (event.name, event.deployment_id) == ("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/123")
    assert event.at == datetime(2020, 5, 23, 12, 31, 14, tzinfo=UTC)


def test_a_service_action_names_its_service():
    event = parse_event(service_action("e1"))
    assert isinstance(event, ServiceAction)
    assert (event.key, event.name, event.event_type, event.reason) == (
        KEY,
        "SERVICE_TASK_PLACEMENT_FAILURE",
        "ERROR",
        "RESOURCE:MEMORY",
    )


def test_an_old_format_service_arn_takes_the_cluster_from_the_event_or_the_lookup():
    old = f"arn:aws:ecs:us-west-2:{ACCOUNT}:service/servicetest"
    action = service_action("e1")
    action["resources"] = [old]
    assert parse_event(action).key == KEY  # type: ignore[union-attr]
    deployment = deployment_event()
    deployment["resources"] = [old]
    with pytest.raises(MalformedEventError, match="cannot tell the cluster"):
        parse_event(deployment)
    lookups: list[tuple[str, str, str]] = []
    found = parse_event(deployment, cluster_of=lambda *args: lookups.append(args) or "default")
    assert found.key == KEY  # type: ignore[union-attr]
    assert lookups == [(ACCOUNT, "us-west-2", "servicetest")]


def test_a_stopped_task_is_diagnosed_from_the_event_alone():
    event = parse_event(task_event("t1", 4))
    assert isinstance(event, TaskStateChange)
    assert event.key == KEY and event.version == 4 and event.stopped
    finding = diagnose_stopped_task(event)
    assert finding is not None
    assert finding.cause is Cause.OOM
    assert finding.subject.cluster == "default" and finding.subject.service == "servicetest"
    assert finding.occurred_at == datetime(2020, 11, 4, 18, 29, 44, tzinfo=UTC)


def test_a_running_task_is_not_diagnosed():
    event = parse_event(task_event("t1", 2, last_status="RUNNING"))
    assert isinstance(event, TaskStateChange) and not event.stopped
    assert diagnose_stopped_task(event) is None


def test_tasks_not_started_by_a_service_and_other_events_are_ignored():
    standalone = task_event("t1", 3)
    standalone["detail"]["group"] = "family:batch-job"
    assert isinstance(parse_event(standalone), Ignored)
    instance = {**deployment_event(), "detail-type": "ECS Container Instance State Change"}
    assert isinstance(parse_event(instance), Ignored)
    other_source = {**deployment_event(), "source": "aws.ec2"}
    assert isinstance(parse_event(other_source), Ignored)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("id"), "'id'"),
        (lambda e: e.pop("account"), "'account'"),
        (lambda e: e.update(detail="text"), "'detail'"),
        (lambda e: e["detail"].pop("eventName"), "'detail.eventName'"),
        (lambda e: e.update(resources=["arn:aws:ecs:us-west-2:1:cluster/x"]), "'resources'"),
    ],
)
def test_malformed_events_name_the_field(mutate, field):
    event = deployment_event()
    mutate(event)
    with pytest.raises(MalformedEventError, match=field):
        parse_event(event)


def test_a_task_event_without_a_version_names_it():
    event = task_event("t1", 1)
    del event["detail"]["version"]
    with pytest.raises(MalformedEventError, match=r"'detail\.version'"):
        parse_event(event)


def test_duplicates_and_stale_versions_change_nothing():
    intake = EventIntake()
    first = intake.receive([message(task_event("t-4", 4), "r1"), message(deployment_event("d-1"), "r2")])
    assert [type(e).__name__ for e in first.events] == ["TaskStateChange", "DeploymentStateChange"]
    assert first.keys == (KEY,)
    assert first.ack_now == ()

    again = intake.receive(
        [
            message(task_event("t-4", 4), "r3"),  # the same event delivered twice (same id)
            message(task_event("t-3b", 4), "r4"),  # another id, the same task version
            message(task_event("t-3", 3), "r5"),  # an older version arriving late
            message(deployment_event("d-1"), "r6"),
        ]
    )
    assert again.events == ()
    assert again.keys == ()
    assert intake.pending == 6, "held until the key they are about is handled"

    claim = intake.claim(KEY)
    assert set(claim.receipts) == {"r1", "r2", "r3", "r4", "r5", "r6"}
    assert intake.finish(claim) == claim.receipts
    assert intake.pending == 0

    late = intake.receive([message(task_event("t-2", 2), "r7")])
    assert late.events == () and late.ack_now == ("r7",), "nothing pending: a stale copy is deleted at once"


def test_a_newer_version_of_the_same_task_is_new():
    intake = EventIntake()
    intake.receive([message(task_event("a", 2, last_status="RUNNING"), "r1")])
    batch = intake.receive([message(task_event("b", 5), "r2")])
    assert [e.version for e in batch.events if isinstance(e, TaskStateChange)] == [5]
    assert batch.keys == (KEY,)


def test_a_running_task_marks_nothing_and_is_deleted_at_once():
    intake = EventIntake()
    batch = intake.receive([message(task_event("a", 2, last_status="RUNNING"), "r1")])
    assert len(batch.events) == 1
    assert batch.keys == ()
    assert batch.ack_now == ("r1",)


def test_messages_arriving_during_a_reconcile_wait_for_the_next_one():
    intake = EventIntake()
    intake.receive([message(service_action("s1"), "r1")])
    claim = intake.claim(KEY)
    batch = intake.receive([message(service_action("s2", "SERVICE_STEADY_STATE"), "r2")])
    assert batch.keys == (KEY,), "the key goes back on the queue (the queue re-adds it after done)"
    assert intake.finish(claim) == ("r1",)
    assert intake.pending == 1
    assert intake.finish(intake.claim(KEY)) == ("r2",)


def test_a_copy_arriving_during_a_reconcile_is_deleted_with_it():
    intake = EventIntake()
    intake.receive([message(service_action("s1"), "r1")])
    claim = intake.claim(KEY)
    copy_ = intake.receive([message(service_action("s1"), "r1-copy")])
    assert copy_.keys == () and copy_.ack_now == (), "its original is being handled"
    assert set(intake.finish(claim)) == {"r1", "r1-copy"}
    assert intake.pending == 0


def test_a_failed_reconcile_keeps_its_messages_for_the_next_one():
    intake = EventIntake()
    intake.receive([message(service_action("s1"), "r1")])
    claim = intake.claim(KEY)
    # While the reconcile fails, SQS redelivers the same message under a new receipt handle.
    redelivered = intake.receive([message(service_action("s1"), "r1-again")])
    assert redelivered.ack_now == (), "its key is being handled: not deleted yet"
    intake.release(claim)
    assert intake.pending == 2
    assert set(intake.finish(intake.claim(KEY))) == {"r1", "r1-again"}


def test_unusable_messages_are_deleted_at_once_and_reported():
    intake = EventIntake()
    not_json = {"MessageId": "m-1", "ReceiptHandle": "r1", "Body": "{not json"}
    a_list = {"MessageId": "m-2", "ReceiptHandle": "r2", "Body": "[]"}
    broken = deployment_event("d")
    del broken["detail"]["eventName"]
    standalone = task_event("t", 1)
    standalone["detail"]["group"] = "family:job"
    batch = intake.receive([not_json, a_list, message(broken, "r3"), message(standalone, "r4")])
    assert batch.ack_now == ("r1", "r2", "r3", "r4")
    assert [r.message_id for r in batch.rejected] == ["m-1", "m-2", "m-r3"]
    assert "not JSON" in batch.rejected[0].reason
    assert "'detail.eventName'" in batch.rejected[2].reason
    assert len(batch.ignored) == 1
    assert batch.keys == ()


def test_memory_is_bounded_and_forgetting_costs_only_a_reconcile():
    intake = EventIntake(remembered_events=3, remembered_tasks=2)
    for index in range(5):
        intake.receive([message(service_action(f"s{index}"), f"r{index}")])
        intake.finish(intake.claim(KEY))
    assert len(intake._seen) == 3
    batch = intake.receive([message(service_action("s0"), "again")])
    assert batch.keys == (KEY,), "an id forgotten long ago counts as new"


def test_events_for_different_accounts_are_different_keys():
    intake = EventIntake()
    other = copy.deepcopy(deployment_event("x"))
    other["account"] = "444455556666"
    other["resources"] = ["arn:aws:ecs:us-west-2:444455556666:service/default/servicetest"]
    batch = intake.receive([message(deployment_event("y"), "r1"), message(other, "r2")])
    assert batch.keys == (KEY, ServiceKey("444455556666", "us-west-2", "default", "servicetest"))


# --- against the simulated world: EventBridge to SQS, late, duplicated and out of order ---------------------


def test_the_intake_over_a_realistic_queue_diagnoses_without_describe_calls():
    from agent.sim import World, scenario  # noqa: PLC0415 - the world is the sim extra
    from agent.sim.eventbridge import DeliveryProfile  # noqa: PLC0415
    from tests.sim.times import START  # noqa: PLC0415

    with World.start(seed=5, start_time=START) as world:
        url = world.configure_events_queue()
        world.event_delivery(
            DeliveryProfile(min_delay=0.0, max_delay=10.0, late_rate=0.2, late_delay=30.0, duplicate_rate=0.25)
        )
        oom = scenario("oom-exit-137")
        oom.setup(world)
        world.advance(120)
        sqs = world.client("sqs")
        world.requests.clear()

        intake = EventIntake()
        accepted: list[Any] = []
        keys: list[ServiceKey] = []
        received = 0
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received += len(batch)
            result = intake.receive(batch)
            accepted += result.events
            keys += result.keys
            done = list(result.ack_now)
            for key in result.keys:
                done += intake.finish(intake.claim(key))  # handled at once, for the test
            for start in range(0, len(done), 10):
                entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(done[start : start + 10])]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)

        assert received > len(accepted), "duplicates and stale versions were dropped"
        assert world.delivery.duplicated > 0
        assert len({e.event_id for e in accepted}) == len(accepted)
        newest: dict[str, int] = {}
        for event in accepted:
            if isinstance(event, TaskStateChange):
                assert event.version > newest.get(event.task_arn, 0), "a task's accepted versions only grow"
                newest[event.task_arn] = event.version
        api = ServiceKey(world.account_id, world.region, "prod", "api")
        assert api in keys
        findings = [f for e in accepted if isinstance(e, TaskStateChange) and (f := diagnose_stopped_task(e))]
        assert findings and {f.cause for f in findings if f.failure} == {Cause.OOM}
        assert [r.operation for r in world.requests.all() if r.service == "ecs"] == [], "no Describe call"

        described = {t["taskArn"]: t for t in world.stopped_tasks("prod", "api")}
        for finding in findings:
            from_describe = diagnose_task(described[finding.source], cluster="prod")
            assert from_describe is not None and from_describe.cause is finding.cause
        assert intake.pending == 0
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
