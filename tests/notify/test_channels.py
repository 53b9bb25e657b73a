"""The channels against the simulated AWS account and local receivers: SNS delivered to an SQS
subscriber with filterable attributes, the webhook URL read from Secrets Manager, and dry-run letting
through exactly one write."""

from __future__ import annotations

import io
import json
import socket

import pytest
from structlog.testing import capture_logs

from agent import logs
from agent.aws.gateway import DryRunViolationError
from agent.notify import (
    ConsoleChannel,
    Kind,
    Notification,
    Notifier,
    PermanentDeliveryError,
    SecretUrl,
    SnsChannel,
    StaticUrl,
    TemporaryDeliveryError,
    WebhookChannel,
    WebhookFormat,
    allows_publish,
    notifier_from_settings,
)
from agent.notify.examples import applied, approval_needed
from agent.notify.render import email_body, sns_subject, text_payload
from agent.settings import Settings
from tests.notify.conftest import SECRET_PATH, gateway, sent


def subscribed_queue(world, topic_arn: str, name: str, filter_policy: dict | None = None) -> str:
    sqs, sns = world.client("sqs"), world.client("sns")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def arrived(world, queue_url: str) -> list[dict]:
    """The SNS envelopes the queue received."""
    messages = world.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_sns_delivers_an_email_readable_message_with_filterable_attributes(world, metrics):
    topic = world.client("sns").create_topic(Name="ecs-medic")["TopicArn"]
    everything = subscribed_queue(world, topic, "everything")
    approvals = subscribed_queue(world, topic, "approvals", {"event": ["approval_needed"], "cluster": ["prod"]})
    aws = gateway(world, metrics, dry_run=True, dry_run_allows=allows_publish(topic))
    hub = Notifier([SnsChannel(aws, topic)], metrics=metrics, log=logs.logger())
    hub.submit(approval_needed())
    hub.submit(applied())
    assert hub.close(30)

    received = arrived(world, everything)
    assert [message["Subject"] for message in received] == [sns_subject(approval_needed()), sns_subject(applied())]
    first = received[0]
    assert first["Message"] == email_body(approval_needed())
    assert {name: value["Value"] for name, value in first["MessageAttributes"].items()} == {
        "event": "approval_needed",
        "cluster": "prod",
        "service": "checkout",
        "cause": "oom",
        "action": "raise_memory",
        "outcome": "awaiting_approval",
        "policy": "raise-memory-on-oom",
    }
    assert "ecs-medic approve p-7c41d2a9e0" in first["Message"]
    # A subscriber filtering on the attributes gets only what it asked for.
    assert [message["Subject"] for message in arrived(world, approvals)] == [sns_subject(approval_needed())]
    assert sent(metrics, "sns", "approval_needed", "sent") == 1
    assert sent(metrics, "sns", "applied", "sent") == 1


def test_dry_run_lets_through_only_publish_to_the_configured_topic(world, metrics):
    sns = world.client("sns")
    topic = sns.create_topic(Name="ecs-medic")["TopicArn"]
    other = sns.create_topic(Name="elsewhere")["TopicArn"]
    aws = gateway(world, metrics, dry_run=True, dry_run_allows=allows_publish(topic))
    world.requests.clear()

    aws.call("sns", "Publish", {"TopicArn": topic, "Message": "allowed"})
    refused = [
        ("sns", "Publish", {"TopicArn": other, "Message": "another topic"}),
        ("sns", "Publish", {"TopicArn": topic, "PhoneNumber": "+15555550100", "Message": "a phone too"}),
        ("sns", "Publish", {"TargetArn": topic, "Message": "as a target"}),
        ("sns", "Publish", {"PhoneNumber": "+15555550100", "Message": "a phone"}),
        ("sns", "DeleteTopic", {"TopicArn": topic}),
        ("sns", "Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": "x@example.com"}),
        ("ecs", "UpdateService", {"cluster": "prod", "service": "web", "desiredCount": 0}),
    ]
    for api, operation, params in refused:
        with pytest.raises(DryRunViolationError):
            aws.call(api, operation, params)
    with pytest.raises(DryRunViolationError):  # and through a client used directly
        aws.client("sns").publish(TopicArn=other, Message="hello")
    assert [(r.service, r.operation) for r in world.requests.mutating()] == [("sns", "Publish")]
    assert not allows_publish(None)("sns", "Publish", {"TopicArn": topic})


def test_a_topic_the_gateway_refuses_fails_delivery_without_sending(world, metrics):
    topic = world.client("sns").create_topic(Name="ecs-medic")["TopicArn"]
    aws = gateway(world, metrics, dry_run=True)  # no write allowed at all
    world.requests.clear()
    hub = Notifier([SnsChannel(aws, topic)], metrics=metrics, log=logs.logger(), max_attempts=2, sleep=lambda _s: None)
    with capture_logs() as lines:
        hub.submit(applied())
        assert hub.close(10)
    assert world.requests.mutating() == []
    assert sent(metrics, "sns", "applied", "failed") == 1
    failed = next(line for line in lines if line["event"] == "notification_failed")
    assert failed["error"].startswith("sns:Publish: DryRunViolationError: dry-run: refused sns:Publish")


def test_sns_errors_are_permanent_or_temporary(world, metrics):
    aws = gateway(world, metrics, dry_run=False)
    missing = f"arn:aws:sns:{world.region}:{world.account_id}:no-such-topic"
    with pytest.raises(PermanentDeliveryError, match="NotFound"):
        SnsChannel(aws, missing).send(applied())
    topic = world.client("sns").create_topic(Name="ecs-medic")["TopicArn"]
    world.faults.add(kind="server_error", service="sns", operation="Publish", count=5)  # all the gateway's attempts
    with pytest.raises(TemporaryDeliveryError):
        SnsChannel(aws, topic).send(applied())


def test_nothing_is_lost_when_sns_recovers(world, metrics):
    topic = world.client("sns").create_topic(Name="ecs-medic")["TopicArn"]
    queue = subscribed_queue(world, topic, "everything")
    aws = gateway(world, metrics, dry_run=False)
    # The gateway makes 5 attempts per call; 7 failures outlast its first call, not the notifier's retry.
    world.faults.add(kind="server_error", service="sns", operation="Publish", count=7)
    hub = Notifier([SnsChannel(aws, topic)], metrics=metrics, log=logs.logger(), sleep=lambda _s: None)
    hub.submit(applied())
    assert hub.close(30)
    assert [message["Subject"] for message in arrived(world, queue)] == [sns_subject(applied())]
    assert sent(metrics, "sns", "applied", "retried") == 1
    assert sent(metrics, "sns", "applied", "sent") == 1


def test_webhook_url_from_a_secrets_manager_secret(world, metrics, receiver_factory):
    receiver = receiver_factory()
    secrets = world.client("secretsmanager")
    plain = secrets.create_secret(Name="ecs-medic/webhook", SecretString=receiver.url)["ARN"]
    as_json = secrets.create_secret(Name="ecs-medic/webhook-json", SecretString=json.dumps({"url": receiver.url}))[
        "ARN"
    ]
    aws = gateway(world, metrics, dry_run=True)
    world.requests.clear()
    with capture_logs() as lines:
        for arn, key in ((plain, "p-1:applied"), (as_json, "p-2:applied")):
            settings = Settings(notify_webhook_secret_arn=arn, notify_webhook_format="text")
            hub = notifier_from_settings(settings, aws, metrics, logs.logger())
            hub.submit(Notification(kind=Kind.APPLIED, key=key, cluster="prod", service="web", action="raise_memory"))
            assert hub.close(10)
    assert len(receiver.delivered) == 2
    assert receiver.delivered[0] == text_payload(
        Notification(kind=Kind.APPLIED, key="p-1:applied", cluster="prod", service="web", action="raise_memory")
    )
    assert [r.operation for r in world.requests.all() if r.service == "secretsmanager"] == ["GetSecretValue"] * 2
    assert world.requests.mutating() == []  # reading the secret is a read: dry-run allows it
    assert SECRET_PATH not in repr(lines)


def test_a_secret_without_a_url_is_a_permanent_error_that_never_shows_the_value(world, metrics):
    arn = world.client("secretsmanager").create_secret(Name="wrong", SecretString="hunter2-not-a-url")["ARN"]
    with pytest.raises(PermanentDeliveryError) as raised:
        SecretUrl(gateway(world, metrics, dry_run=True), arn).get()
    assert "hunter2" not in str(raised.value)
    with pytest.raises(PermanentDeliveryError, match="ResourceNotFoundException"):  # a 4xx: a fact
        SecretUrl(gateway(world, metrics, dry_run=True), arn + "-gone").get()


def test_a_refused_webhook_reads_its_secret_again(world, metrics, receiver_factory):
    revoked = receiver_factory(answer=lambda _n: 404)
    rotated = receiver_factory()
    secrets = world.client("secretsmanager")
    arn = secrets.create_secret(Name="ecs-medic/webhook", SecretString=revoked.url)["ARN"]
    channel = WebhookChannel(SecretUrl(gateway(world, metrics, dry_run=True), arn))
    with pytest.raises(PermanentDeliveryError, match="HTTP 404"):
        channel.send(applied())
    secrets.put_secret_value(SecretId=arn, SecretString=rotated.url)
    channel.send(applied())
    assert len(rotated.delivered) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(400, PermanentDeliveryError, id="400-bad-payload"),
        pytest.param(403, PermanentDeliveryError, id="403-forbidden"),
        pytest.param(302, PermanentDeliveryError, id="302-redirect-not-followed"),
        pytest.param(429, TemporaryDeliveryError, id="429-rate-limited"),
        pytest.param(500, TemporaryDeliveryError, id="500"),
        pytest.param(503, TemporaryDeliveryError, id="503"),
    ],
)
def test_webhook_statuses(receiver_factory, status, error):
    receiver = receiver_factory(answer=lambda _n: status)
    with pytest.raises(error, match=f"HTTP {status}"):
        WebhookChannel(StaticUrl(receiver.url)).send(applied())


def test_webhook_unreachable_is_temporary():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TemporaryDeliveryError, match="unreachable") as raised:
        WebhookChannel(StaticUrl(f"http://127.0.0.1:{port}{SECRET_PATH}"), connect_timeout=2.0).send(applied())
    assert SECRET_PATH not in str(raised.value) and raised.value.__cause__ is None


def test_webhook_posts_slack_json(receiver_factory):
    receiver = receiver_factory()
    WebhookChannel(StaticUrl(receiver.url), fmt=WebhookFormat.SLACK).send(approval_needed())
    body = receiver.delivered[0]
    assert set(body) == {"text", "blocks"}
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert "ecs-medic approve p-7c41d2a9e0" in body["text"]


def test_webhook_url_must_be_http():
    for bad in ("ftp://example.com/hook", "not a url", "/relative"):
        with pytest.raises(ValueError, match="webhook URL") as raised:
            StaticUrl(bad)
        assert bad not in str(raised.value)


def test_console_channel_prints_the_subject_and_the_body(metrics):
    out = io.StringIO()
    hub = Notifier([ConsoleChannel(out)], metrics=metrics, log=logs.logger())
    hub.submit(approval_needed())
    assert hub.close(10)
    assert out.getvalue() == f"Subject: {sns_subject(approval_needed())}\n\n{email_body(approval_needed())}\n"
    assert sent(metrics, "console", "approval_needed", "sent") == 1
