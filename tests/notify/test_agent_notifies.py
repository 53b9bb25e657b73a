"""The agent tells people, once per change of state: over several passes, across a restart, in
dry-run through SNS, and never waiting on a channel that hangs."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from agent import logs
from agent.cli import main
from agent.metrics import Metrics
from agent.notify import Notifier, RecordingChannel, StaticUrl, WebhookChannel
from agent.settings import Mode
from agent.sim import SCENARIOS
from agent.sim.scenarios import roll_back
from tests.e2e.conftest import prepare, start_agent


def listening(run) -> RecordingChannel:
    """Give the agent a notifier with a recording channel; returns the channel."""
    channel = RecordingChannel()
    run.reconciler.notifier = Notifier([channel], metrics=run.metrics, log=logs.logger(), ledger=run.reconciler.ledger)
    return channel


def sent(run, channel: RecordingChannel) -> list[tuple[str, str, str]]:
    assert run.reconciler.notifier.flush(10)
    return [(n.kind.value, n.verdict.value if n.verdict else "", n.action) for n in channel.sent]


def test_an_applied_fix_and_its_verdict_are_each_told_once_across_passes_and_a_restart(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    channel = listening(run)
    run.passes(8)
    told = sent(run, channel)
    assert ("applied", "", "rollback_task_definition") in told
    assert ("verdict", "verified", "rollback_task_definition") in told
    assert len(told) == len(set(told)), told  # each once
    [applied] = [n for n in channel.sent if n.kind.value == "applied"]
    assert applied.commands and applied.evidence and applied.changes
    restarted = start_agent(world)  # a new process: what was sent is read back from the service's state
    again = listening(restarted)
    restarted.passes(4)
    assert [n for n in again.sent if n.action == "rollback_task_definition"] == []


def test_a_proposal_waiting_for_approval_is_told_once_with_the_approve_command(world):
    prepare(world, SCENARIOS["oom-exit-137"])
    run = start_agent(world, mode=Mode.DRY_RUN)
    channel = listening(run)
    run.passes(4)
    waiting = [n for n in channel.sent if n.kind.value == "approval_needed"]
    assert len(waiting) == 1
    assert waiting[0].approve_command == f"ecs-medic approve {waiting[0].proposal_id}"
    assert any(c.field == "containerDefinitions[app].memory" for c in waiting[0].changes)


def test_a_storm_pause_and_its_end_are_told_once_each(world):
    prepare(world, SCENARIOS["storm"])
    run = start_agent(world)
    channel = listening(run)
    run.passes(3)
    roll_back(world.client, "payments", *SCENARIOS["storm"].services)  # a person fixes the release
    world.advance(600)
    run.passes(3)
    told = [(n.kind.value, n.cluster) for n in channel.sent if n.kind.value in ("paused", "resumed")]
    assert told == [("paused", "payments"), ("resumed", "payments")]


def test_a_hanging_webhook_never_holds_up_a_pass(world, receiver_factory):
    receiver = receiver_factory(hold=True)
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    webhook = WebhookChannel(StaticUrl(receiver.url))
    run.reconciler.notifier = Notifier([webhook], metrics=run.metrics, log=logs.logger(), ledger=run.reconciler.ledger)
    run.passes(2)  # the first notification is held by the receiver while these passes run
    assert receiver.arrived.wait(10)
    assert not receiver.release.is_set()
    report = run.passes(1)
    assert report.result == "ok"
    receiver.release.set()
    assert run.reconciler.notifier.close(30)
    assert receiver.requests  # delivered once released


def test_dry_run_once_publishes_to_the_topic_and_writes_nothing_else(world, monkeypatch):
    prepare(world, SCENARIOS["crash-loop"])
    sqs, sns = world.client("sqs"), world.client("sns")
    topic = sns.create_topic(Name="ecs-medic")["TopicArn"]
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue)
    world.requests.clear()
    for key, value in {**world.environment, "ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN": topic}.items():
        monkeypatch.setenv(key, value)
    assert main(["once"]) == 0
    assert [r.operation for r in world.requests.mutating()] == ["Publish"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    subjects = [json.loads(m["Body"])["Subject"] for m in messages]
    # (The command runs on the real clock, the world on its own: which fix it proposes is beside the point.)
    assert len(subjects) == 1
    assert subjects[0].startswith("ecs-medic: Proposed: ")
    assert subjects[0].endswith(" prod/worker")


def test_notification_metrics_count_each_delivery(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world)
    metrics = Metrics(CollectorRegistry())
    channel = RecordingChannel()
    run.reconciler.notifier = Notifier([channel], metrics=metrics, log=logs.logger(), ledger=run.reconciler.ledger)
    run.passes(2)
    assert run.reconciler.notifier.flush(10)
    sample = metrics.registry.get_sample_value
    assert sample("ecs_medic_notifications_total", {"channel": "recording", "event": "applied", "outcome": "sent"}) == 1
